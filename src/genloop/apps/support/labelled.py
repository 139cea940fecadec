"""Small hand-labelled evaluation sets, written for this app (not drawn from any corpus).

SLOT_EXAMPLES   customer messages in English and Chinese with every slot a person would mark,
                values normalised as `slots.extract_slots` normalises them. The phone numbers,
                e-mails and ID numbers are made up (the ID numbers carry a valid GB 11643 check
                character so that the detector, which insists on it, can find them).
PARAPHRASES     customer-style rewordings of chatterbot-corpus questions → the corpus question whose
                answer is right. None of these strings is in the corpus, so none is in any index.

Ships inside the package so `genloop support eval` works on an installed genloop; your own
set can be passed as JSONL (`--slots FILE`: {"text": ..., "slots": [[type, value], ...]}).
"""

from __future__ import annotations

SLOT_EXAMPLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "My order #A12345 arrived broken, please call me at +1 415-555-0123.",
        (("ORDER", "A12345"), ("PHONE", "+1 415-555-0123")),
    ),
    (
        "I was charged $49.99 twice on 2024-05-01 for my subscription.",
        (("AMOUNT", "49.99 USD"), ("DATE", "2024-05-01"), ("PRODUCT", "subscription")),
    ),
    (
        "Order number: 7788-1234 — the laptop never arrived. Email me at jane.doe@example.com",
        (("ORDER", "7788-1234"), ("PRODUCT", "laptop"), ("EMAIL", "jane.doe@example.com")),
    ),
    ("My printer stopped working yesterday.", (("PRODUCT", "printer"), ("DATE", "yesterday"))),
    (
        "Refund 12.50 USD to my card please, order id B-99812.",
        (("AMOUNT", "12.50 USD"), ("ORDER", "B-99812")),
    ),
    (
        "The router I bought on May 3rd 2024 keeps dropping the connection.",
        (("PRODUCT", "router"), ("DATE", "2024-05-03")),
    ),
    ("I forgot my password and can't log into my account.", (("PRODUCT", "account"),)),
    (
        "Can you reset my account? My e-mail is bob_smith@mail.example.org and phone (212) 555-0187",
        (("PRODUCT", "account"), ("EMAIL", "bob_smith@mail.example.org"), ("PHONE", "(212) 555-0187")),
    ),
    (
        "My headphones were delivered on 5/14/2024 but the order 55501 was for earbuds.",
        (("PRODUCT", "headphones"), ("DATE", "2024-05-14"), ("ORDER", "55501"), ("PRODUCT", "earbuds")),
    ),
    ("How much is shipping to Canada?", ()),
    (
        "I paid RMB 300 today and the keyboard is missing keys.",
        (("AMOUNT", "300 CNY"), ("DATE", "today"), ("PRODUCT", "keyboard")),
    ),
    ("My internet is not working since 12 June.", (("DATE", "06-12"),)),
    ("The charger costs €25 — is it covered by warranty?", (("PRODUCT", "charger"), ("AMOUNT", "25 EUR"))),
    (
        "Please send the invoice for order no. INV-2024-0042 to accounts@shop.example.com.",
        (("ORDER", "INV-2024-0042"), ("EMAIL", "accounts@shop.example.com")),
    ),
    (
        "my monitor flickers, bought it for 199 dollars on Jan 2",
        (("PRODUCT", "monitor"), ("AMOUNT", "199 USD"), ("DATE", "01-02")),
    ),
    (
        "我的订单号E2024050112还没发货，手机13812345678。",
        (("ORDER", "E2024050112"), ("PHONE", "13812345678")),
    ),
    (
        "2024年5月1日买的耳机坏了，付了199元。",
        (("DATE", "2024-05-01"), ("PRODUCT", "耳机"), ("AMOUNT", "199 CNY")),
    ),
    (
        "身份证号11010519491231002X，请帮我查一下账号。",
        (("CN_ID", "11010519491231002X"), ("PRODUCT", "账号")),
    ),
    (
        "路由器昨天开始断网，邮箱 wang.li@example.cn",
        (("PRODUCT", "路由器"), ("DATE", "昨天"), ("EMAIL", "wang.li@example.cn")),
    ),
    ("退款99块什么时候到？订单 778812", (("AMOUNT", "99 CNY"), ("ORDER", "778812"))),
    ("5月3日买的打印机不能打印。", (("DATE", "05-03"), ("PRODUCT", "打印机"))),
    ("我的笔记本电脑开不了机。", (("PRODUCT", "笔记本电脑"),)),
    ("请问怎么修改密码？", ()),
    (
        "手机号码 15900001111，鼠标没反应，2024/6/18 下的单。",
        (("PHONE", "15900001111"), ("PRODUCT", "鼠标"), ("DATE", "2024-06-18")),
    ),
    ("会员费扣了￥30，今天才发现。", (("PRODUCT", "会员"), ("AMOUNT", "30 CNY"), ("DATE", "今天"))),
    # written after the rules, as a person would label them, not adjusted to what the rules find
    (
        "I bought the tablet last Tuesday for two hundred dollars.",
        (("PRODUCT", "tablet"), ("DATE", "last tuesday"), ("AMOUNT", "200 USD")),
    ),
    ("上周五下的单，订单尾号是 4421", (("DATE", "上周五"), ("ORDER", "4421"))),
    (
        "Call me back on 020 7946 0958, it's about my camera.",
        (("PHONE", "020 7946 0958"), ("PRODUCT", "camera")),
    ),
)

PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("my pc gets really hot", "My system is overheating."),
    ("the computer does not start at all", "My computer won't turn on."),
    ("mouse stopped responding", "My mouse is not responding."),
    ("laptop display shows only black", "My laptop screen is black."),
    ("there is no sound coming out of my speakers", "I can't hear any sound."),
    ("internet connection is down", "My internet is not working."),
    ("my webcam is not detected by the computer", "My webcam isn't detected."),
    ("I can't remember my password", "I forgot my password."),
    ("the printer won't print anything", "My printer is not printing."),
    ("why does my screen flicker", "My screen is flickering."),
    ("what exactly is an operating system", "What is an operating system?"),
    ("who was the inventor of the computer", "Who invented computers?"),
    ("explain what a microprocessor is", "What is a microprocessor?"),
    ("what does the stock market do", "what is the stock market"),
    ("please explain economics", "what is economics"),
    ("show me quicksort or another sorting algorithm", "can you write a sorting algorithm?"),
    ("什么是股票市场", "什么是股市"),
    ("请解释一下经济学", "什么是经济学"),
    ("聊天机器人是什么", "什么是聊天机器人"),
    ("你能在哪些操作系统上运行", "你能在什么操作系统上运行"),
    ("机器人是什么东西", "什么是机器人"),
    ("热力学是什么", "什么是热力学"),
    ("超声波是什么", "什么是超声波"),
    ("你最喜欢哪种编程语言", "你最喜欢的编程语言是什么"),
)

"""Shared by the support tests (tests/apps, tests/server): a tiny English + Chinese ticket file.

Eight resolved tickets per language over four intents (billing, shipping, account, hardware), and
made-up PII values (the ID number carries a valid GB 11643 check character).
"""

from __future__ import annotations

import csv
from pathlib import Path

TICKETS = [
    (
        "I was charged twice for my subscription",
        "Sorry about the double charge: the duplicate payment is refunded within 5 working days.",
        "billing",
        "en",
    ),
    (
        "How do I get a refund for a payment?",
        "Refunds go back to the original payment method within 5 working days.",
        "billing",
        "en",
    ),
    (
        "Where is my package? It has not arrived",
        "Track the parcel with the link in your shipping e-mail; most arrive within 3 days.",
        "shipping",
        "en",
    ),
    (
        "Can I change my delivery address?",
        "Yes, until the parcel ships: edit the address under My orders.",
        "shipping",
        "en",
    ),
    (
        "I forgot my password and cannot log in",
        "Use 'Forgot password' on the sign-in page to get a reset link.",
        "account",
        "en",
    ),
    (
        "How do I delete my account?",
        "Open Settings, Privacy, Delete account; it is removed after 30 days.",
        "account",
        "en",
    ),
    (
        "My laptop screen stays black",
        "Hold the power button for 10 seconds, then connect an external monitor to test the display.",
        "hardware",
        "en",
    ),
    (
        "The printer does not print anything",
        "Check paper and ink, then restart the printer and reinstall its driver.",
        "hardware",
        "en",
    ),
    ("我被重复扣款了", "很抱歉重复扣款，多扣的款项会在5个工作日内退回原支付账户。", "billing", "zh"),
    ("怎么申请退款", "在我的订单中选择申请退款，款项原路退回。", "billing", "zh"),
    ("我的快递还没到", "请用发货短信中的链接查询物流，一般3天内送达。", "shipping", "zh"),
    ("可以修改收货地址吗", "发货前可以在我的订单里修改收货地址。", "shipping", "zh"),
    ("忘记密码无法登录", "请在登录页点击忘记密码，按短信验证码重置。", "account", "zh"),
    ("怎么注销账号", "在设置-隐私-注销账号中申请，30天后删除。", "account", "zh"),
    ("笔记本电脑黑屏", "长按电源键10秒后重启，并外接显示器检查屏幕。", "hardware", "zh"),
    ("打印机不能打印", "检查纸张和墨盒，重启打印机并重新安装驱动。", "hardware", "zh"),
]
PHONE_CN, PHONE_US, EMAIL, CN_ID = (
    "13812345678",
    "+1 415-555-0123",
    "jane.doe@example.com",
    "11010519491231002X",
)


def write_tickets(
    path: Path, rows: list[tuple[str, str, str, str]] = TICKETS, encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "intent", "language"])
        writer.writerows(rows)
    return path

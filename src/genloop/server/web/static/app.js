// genloop console: like / dislike without reloading the page.
// Each click POSTs one feedback event as JSON (the server refuses other content
// types: that is its CSRF defence) with a fresh idempotency key, reused only to
// retry the same click after a network error.
"use strict";

(function () {
  const FEEDBACK_URL = "/api/v1/feedback";

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let toastTimer = null;
  function toast(message) {
    const box = document.querySelector(".toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  async function postFeedback(body) {
    const request = {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
    };
    let response;
    try {
      response = await fetch(FEEDBACK_URL, request);
    } catch (networkError) {
      response = await fetch(FEEDBACK_URL, request); // one retry; same key, so never counted twice
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof data.detail === "string" ? data.detail : response.statusText;
      throw new Error(detail || "could not record your vote");
    }
    return data;
  }

  function setCount(group, kind, value) {
    const counter = group.querySelector('[data-count="' + kind + '"]');
    if (!counter || counter.textContent === String(value)) return;
    counter.textContent = String(value);
    counter.classList.remove("bump");
    void counter.offsetWidth; // restart the animation
    counter.classList.add("bump");
  }

  async function vote(button) {
    const group = button.closest("[data-publication]");
    if (!group) return;
    const buttons = group.querySelectorAll("[data-vote]");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const event = await postFeedback({
        publication_id: group.dataset.publication,
        kind: button.dataset.vote,
        idempotency_key: newIdempotencyKey(),
      });
      // The same publication can appear more than once on a page: update every copy.
      const selector = '[data-publication="' + CSS.escape(event.publication_id) + '"]';
      document.querySelectorAll(selector).forEach((copy) => {
        setCount(copy, "like", event.likes);
        setCount(copy, "dislike", event.dislikes);
        copy.querySelectorAll("[data-vote]").forEach((b) => {
          b.setAttribute("aria-pressed", String(b.dataset.vote === event.kind));
        });
      });
    } catch (error) {
      toast(error.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.addEventListener("click", (clickEvent) => {
    const button = clickEvent.target.closest("[data-vote]");
    if (button) {
      clickEvent.preventDefault();
      vote(button);
    }
  });
})();

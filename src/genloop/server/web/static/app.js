// genloop console: like / dislike / rate / comment / edit-in-place without reloading the page,
// the run page's live charts and the job page's progress.
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

  // The server answers how the vote changed the counts (+1, 0 or -1 each: a dislike that
  // replaces this viewer's like is likes -1, dislikes +1), not the counts: recounting them
  // on every click was the endpoint's main cost. The page adds the change to what it shows.
  function addToCount(group, kind, change) {
    const counter = group.querySelector('[data-count="' + kind + '"]');
    if (!counter || !change) return;
    const current = parseInt(counter.textContent, 10) || 0;
    counter.textContent = String(Math.max(0, current + change));
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
        addToCount(copy, "like", event.likes_change);
        addToCount(copy, "dislike", event.dislikes_change);
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

  // -- rating, comment, edit: one JSON feedback event each ------------------------------------

  async function react(publicationId, body, doneMessage) {
    try {
      await postFeedback(Object.assign({ publication_id: publicationId, idempotency_key: newIdempotencyKey() }, body));
      toast(doneMessage);
      return true;
    } catch (error) {
      toast(error.message);
      return false;
    }
  }

  async function rate(star) {
    const group = star.closest("[data-reactions]");
    const value = Number(star.dataset.rating);
    if (await react(group.dataset.reactions, { kind: "rating", value: value }, "Rated " + value + " / 5")) {
      group.querySelectorAll("[data-rating]").forEach((s) => {
        s.classList.toggle("on", Number(s.dataset.rating) <= value);
        s.setAttribute("aria-pressed", String(Number(s.dataset.rating) === value));
      });
    }
  }

  async function comment(form) {
    const group = form.closest("[data-reactions]");
    const input = form.querySelector("input[name=text]");
    const text = input.value.trim();
    if (!text) return;
    if (await react(group.dataset.reactions, { kind: "comment", text: text }, "Comment sent · 已发送")) {
      input.value = "";
    }
  }

  function editBox(card) {
    return { text: card.querySelector("[data-text]"), box: card.querySelector(".edit-box"), open: card.querySelector("[data-edit]") };
  }

  function startEdit(card) {
    const parts = editBox(card);
    parts.box.querySelector("textarea").value = parts.text.textContent;
    parts.box.hidden = false;
    parts.open.hidden = true;
    parts.box.querySelector("textarea").focus();
  }

  function stopEdit(card) {
    const parts = editBox(card);
    parts.box.hidden = true;
    parts.open.hidden = false;
  }

  async function saveEdit(card) {
    const parts = editBox(card);
    const text = parts.box.querySelector("textarea").value;
    if (text.trim() === "" || text === parts.text.textContent) { stopEdit(card); return; }
    if (await react(card.dataset.editPublication, { kind: "edit", text: text }, "Edit saved · 已保存")) {
      parts.text.textContent = text;
      card.classList.add("edited");
      stopEdit(card);
    }
  }

  document.addEventListener("click", (clickEvent) => {
    const target = clickEvent.target;
    const button = target.closest("[data-vote]");
    if (button) {
      clickEvent.preventDefault();
      vote(button);
      return;
    }
    const star = target.closest("[data-rating]");
    if (star) { clickEvent.preventDefault(); rate(star); return; }
    const card = target.closest("[data-edit-publication]");
    if (!card) return;
    if (target.closest("[data-edit]")) startEdit(card);
    else if (target.closest("[data-save-edit]")) saveEdit(card);
    else if (target.closest("[data-cancel-edit]")) stopEdit(card);
  });

  document.addEventListener("submit", (submitEvent) => {
    const form = submitEvent.target.closest("[data-comment]");
    if (form) {
      submitEvent.preventDefault();
      comment(form);
    }
  });

  // -- live run charts: the server renders the SVG; swap the fragment in every 5 s --------------

  const RUN_REFRESH_MS = 5000;
  function refreshRunCharts() {
    const charts = document.querySelector("[data-run-charts]");
    if (!charts || charts.dataset.live !== "true") return;
    setTimeout(async () => {
      try {
        const response = await fetch(charts.dataset.runCharts, { credentials: "same-origin" });
        if (!response.ok) throw new Error(response.statusText);
        const holder = document.createElement("div");
        holder.innerHTML = await response.text();
        const fresh = holder.querySelector("[data-run-charts]");
        if (fresh) charts.replaceWith(fresh);
      } catch (error) {
        window.location.reload(); // no fragment (logged out, server restarted): a full reload says why
        return;
      }
      refreshRunCharts();
    }, RUN_REFRESH_MS);
  }

  // -- job progress: poll the job's JSON; reload for the results when it has finished -----------

  const JOB_POLL_MS = 2000;
  function pollJob() {
    const panel = document.querySelector("[data-job]");
    if (!panel || panel.dataset.finished === "true") return;
    setTimeout(async () => {
      try {
        const response = await fetch(panel.dataset.jobUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } });
        if (!response.ok) throw new Error(response.statusText);
        const job = await response.json();
        const progress = Math.round(100 * (Number(job.progress) || 0));
        panel.querySelector("[data-job-progress]").style.width = progress + "%";
        panel.querySelector("[data-job-status]").textContent = job.status;
        panel.querySelector("[data-job-message]").textContent = job.message || "";
        if (["done", "failed", "cancelled"].includes(job.status)) { window.location.reload(); return; }
      } catch (error) {
        window.location.reload(); // no job API here: the page itself shows the progress
        return;
      }
      pollJob();
    }, JOB_POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    refreshRunCharts();
    pollJob();
  });
})();

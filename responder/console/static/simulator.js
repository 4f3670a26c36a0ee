// The console's simulator: an SMS chat and a phone, each one session on the server
// (/console/simulator/sessions), each step posted as JSON with the page's CSRF token.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  // One panel (chat or phone) and its session.
  class Panel {
    constructor(root) {
      this.root = root;
      this.name = root.id;
      this.log = root.querySelector(".screen");
      this.state = root.querySelector(".sim-state");
      this.save = root.querySelector(".save");
      this.session = null;
      this.busy = false;
      for (const button of root.querySelectorAll("button.wait")) {
        button.addEventListener("click", () => this.play("wait", Number(button.dataset.seconds)));
      }
    }

    say(className, text, extra) {
      const line = el("div", `msg ${className}`);
      line.appendChild(el("span", "body", text));
      if (extra) line.appendChild(el("span", "extra", extra));
      this.log.appendChild(line);
      this.log.scrollTop = this.log.scrollHeight;
      return line;
    }

    async start(body) {
      this.session = await post("/console/simulator/sessions", body);
      this.save.href = `/console/simulator/sessions/${this.session.id}/transcript`;
      this.save.classList.remove("disabled");
      this.say("note", `${body.kind === "call" ? "Call" : "Chat"} on ${this.session.channel} (${this.session.provider}) from ${this.session.contact}, clock ${clock(this.session.clock)}`);
      this.root.dataset.session = this.session.id;
    }

    async play(action, value) {
      if (this.busy) return null;
      if (!this.session) {
        this.say("error", "Start first.");
        return null;
      }
      this.busy = true;
      this.root.classList.add("busy");
      try {
        const view = await post(`/console/simulator/sessions/${this.session.id}/steps`, { action, value });
        this.session = view;
        if (action === "wait") this.say("note", `(the clock is now ${clock(view.clock)})`);
        for (const event of view.events) this.show(event);
        this.showState(view);
        this.root.dataset.steps = String(view.steps);
        return view;
      } catch (error) {
        this.say("error", error.message);
        return null;
      } finally {
        this.busy = false;
        this.root.classList.remove("busy");
      }
    }

    show(event) {
      const held = event.held ? " (held for quiet hours)" : "";
      if (event.kind === "reply") this.say("bot reply", event.text);
      else if (event.kind === "sms") this.say("bot sms", event.text, `SMS via ${event.via} to ${event.to}${held}`);
      else if (event.kind === "ivr") {
        const line = this.say("bot ivr", event.say || `(${event.block})`, `${event.endpoint}${held}`);
        line.dataset.block = event.block;
      } else if (event.kind === "http") this.say("call http", `${event.method} ${event.url}`, event.json ? JSON.stringify(event.json) : "");
      else if (event.kind === "call") this.say("call", `${event.provider} ${event.endpoint}`, JSON.stringify(event.params));
      else if (event.kind === "error") this.say("error", event.text);
      else if (event.kind === "matched") this.say("note matched", `matched: ${event.rules.join(", ")}`);
    }

    showState(view) {
      this.state.replaceChildren();
      const c = view.conversation;
      const facts = el("dl", "facts");
      const add = (name, value, id) => {
        facts.appendChild(el("dt", "", name));
        const dd = el("dd", "", value);
        if (id) dd.id = `${this.name}-${id}`;
        facts.appendChild(dd);
      };
      if (!c) add("conversation", "none", "status");
      else {
        add("dialogue", c.dialogue, "dialogue");
        add("state", c.state, "current");
        add("status", c.status, "status");
        if (c.outcome) add("outcome", c.outcome, "outcome");
        add("step", String(c.step));
        if (Object.keys(c.vars).length) add("vars", JSON.stringify(c.vars), "vars");
      }
      add("clock", clock(view.clock));
      this.state.appendChild(facts);
    }
  }

  // -- the chat -------------------------------------------------------------------------
  const chat = new Panel(document.getElementById("chat"));
  const chatText = document.getElementById("chat-text");
  const chatNew = async () => {
    chat.log.replaceChildren();
    chat.state.replaceChildren();
    const [provider, channel] = document.getElementById("chat-provider").value.split("|");
    const contact = document.getElementById("chat-contact").value;
    try {
      await chat.start({ kind: "sms", provider, channel, contact });
    } catch (error) {
      chat.say("error", error.message);
    }
  };
  document.getElementById("chat-new").addEventListener("click", chatNew);
  document.getElementById("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = chatText.value;
    if (!text.trim()) return;
    if (!chat.session) await chatNew();
    chat.say("me", text);
    chatText.value = "";
    await chat.play("sms", text);
    chatText.focus();
  });

  // -- the phone ------------------------------------------------------------------------
  const phone = new Panel(document.getElementById("phone"));
  const display = document.getElementById("phone-display");
  const buttons = {
    call: document.getElementById("phone-call"),
    send: document.getElementById("phone-send"),
    record: document.getElementById("phone-record"),
    played: document.getElementById("phone-played"),
    transfer: document.getElementById("phone-transfer"),
    hangup: document.getElementById("phone-hangup"),
  };
  let maxDigits = 0;

  function phoneButtons(view) {
    const pending = view && view.in_call ? view.pending || "" : "";
    const inCall = Boolean(view && view.in_call);
    phone.root.dataset.pending = pending;
    phone.root.dataset.inCall = String(inCall);
    buttons.call.disabled = inCall;
    buttons.hangup.disabled = !inCall;
    buttons.send.disabled = !pending.endsWith("/gather");
    buttons.record.hidden = !pending.endsWith("/record");
    buttons.played.hidden = !pending.endsWith("/play");
    buttons.transfer.hidden = !pending.endsWith("/transfer");
    for (const key of document.querySelectorAll("#keypad .key")) key.disabled = !inCall;
    const gather = view && view.events ? view.events.filter((e) => e.kind === "ivr" && e.block === "gather").pop() : null;
    if (gather) maxDigits = Number(gather.params.max_digits || 0);
    if (!inCall) display.textContent = "";
  }

  async function phoneStep(action, value) {
    const view = await phone.play(action, value);
    if (view) phoneButtons(view);
    if (view && !view.in_call && action !== "wait") phone.say("note", "(call ended)");
    return view;
  }

  async function sendKeys() {
    const keys = display.textContent;
    display.textContent = "";
    phone.say("me", keys ? `pressed ${keys}` : "(no keys)");
    await phoneStep("press", keys);
  }

  buttons.call.addEventListener("click", async () => {
    phone.log.replaceChildren();
    phone.state.replaceChildren();
    try {
      await phone.start({
        kind: "call",
        provider: "hoiio",
        contact: document.getElementById("phone-contact").value,
        number: document.getElementById("phone-number").value,
      });
    } catch (error) {
      phone.say("error", error.message);
      return;
    }
    phone.say("me", "calling…");
    await phoneStep("call", "incoming");
  });
  for (const key of document.querySelectorAll("#keypad .key")) {
    key.addEventListener("click", async () => {
      if (key.dataset.key === "#") {
        await sendKeys();
        return;
      }
      display.textContent += key.dataset.key;
      if (maxDigits && display.textContent.length >= maxDigits) await sendKeys();
    });
  }
  buttons.send.addEventListener("click", sendKeys);
  buttons.record.addEventListener("click", async () => {
    phone.say("me", "(recorded a message)");
    await phoneStep("record", true);
  });
  buttons.played.addEventListener("click", () => phoneStep("played", true));
  for (const button of document.querySelectorAll("#phone-transfer .transfer")) {
    button.addEventListener("click", async () => {
      phone.say("me", `(the transfer: ${button.dataset.result.replace("_", " ")})`);
      await phoneStep("transfer", button.dataset.result);
    });
  }
  buttons.hangup.addEventListener("click", async () => {
    phone.say("me", "(hung up)");
    await phoneStep("hangup", true);
  });
  phoneButtons(null);
  document.body.dataset.ready = "simulator";
})();

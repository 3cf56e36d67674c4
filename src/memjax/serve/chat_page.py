"""The chat page served at ``/`` for a dialog model: plain HTML, a vanilla script and a style sheet, with no
external resources (the style and the shared script functions are :mod:`memjax.serve.page`'s).

The page keeps the conversation as ``POST /chat`` returns it and sends it back with each turn (only the
last ``memory_size`` entries: the model reads no more). User turns are on the right, the bot's on the
left, the knowledge base's result lines in a collapsed box; under each bot turn, a collapsed heat map of
the memory's attention per hop (the utterances read most, one column per hop). All text is set as text,
never as HTML. Elements the tests drive have stable ids and ``data-testid`` attributes: ``model``,
``conversation``, ``turn``, ``send``, ``new``, ``error``; each bot turn is ``bot-turn``, each user turn
``user-turn``, each result box ``kb``, each heat map ``attention``.
"""

from memjax.serve.page import COMMON_SCRIPT
from memjax.serve.page import STYLE as PAGE_STYLE

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memjax: chat with a memory network</title>
<link rel="stylesheet" href="static/page.css">
</head>
<body>
<header>
  <h1>memjax</h1>
  <p id="model" data-testid="model">Loading the model&hellip;</p>
</header>
<main>
  <ol id="conversation" data-testid="conversation" aria-live="polite"></ol>
  <p id="error" data-testid="error" class="error" role="alert" hidden></p>
  <form id="say-form">
    <label for="turn">Your turn (<code>&lt;SILENCE&gt;</code> lets the bot go on)</label>
    <div class="ask-row">
      <input id="turn" data-testid="turn" type="text" autocomplete="off" placeholder="i'd like a table for two">
      <button id="send" data-testid="send" type="submit">Send</button>
      <button id="new" data-testid="new" type="button">New conversation</button>
    </div>
  </form>
</main>
<script src="static/chat.js"></script>
</body>
</html>
"""

SCRIPT = COMMON_SCRIPT + r"""
const SHOWN = 6;     // utterances in a reply's heat map: those read most in any hop
let history = [];    // the conversation as /chat returned it, sent back with the next turn
let memorySize = 0;  // the utterances the model reads (the most recent): no more are sent
let hasKb = false;   // whether the server runs api_call against a knowledge base
let conversation = 0;  // bumped by "new conversation": a reply to an older one is dropped

async function loadModel() {
  const h = await getJSON("health");
  memorySize = h.memory_size;
  hasKb = h.knowledge_base;
  byId("model").textContent = "Dialog model of task " + h.model + ": " + h.candidates +
    " candidate utterances, reads the last " + h.memory_size + " utterances; " +
    (h.knowledge_base ? "its api_call reads the knowledge base." : "no knowledge base to call.");
}

function addItem(speaker, testid) {
  const item = document.createElement("li");
  item.className = "turn " + speaker;
  item.setAttribute("data-testid", testid);
  byId("conversation").appendChild(item);
  return item;
}

function showUser(text, unknown) {
  const item = addItem("user", "user-turn");
  item.appendChild(cell("p", text, "text"));
  if (unknown.length) {
    item.appendChild(cell("p", "Words the model has never seen: " + unknown.join(", "), "note"));
  }
}

function showReply(reply) {
  const item = addItem("bot", "bot-turn");
  const line = cell("p", reply.text, "text");
  line.appendChild(cell("span", " p=" + reply.probability.toFixed(2), "probability"));
  item.appendChild(line);
  if (reply.hops.some((hop) => hop.length)) {  // a conversation's first turn has nothing to read
    item.appendChild(attention(reply.hops));
  }
  if (reply.text.split(" ")[0] === "api_call") {
    showResults(reply.results);
  }
}

function showResults(lines) {
  const item = addItem("kb", "kb");
  if (!hasKb) {
    item.appendChild(cell("p", "no knowledge base to call (memjax serve --kb FILE)", "note"));
    return;
  }
  const names = [...new Set(lines.map((l) => l.split(" ")[0]))];
  const box = document.createElement("details");
  box.appendChild(cell("summary", names.length ?
    "knowledge base: " + names.length + " restaurant" + (names.length > 1 ? "s" : "") + ": " + names.join(", ") :
    "knowledge base: no restaurant matches"));
  const list = document.createElement("ul");
  lines.forEach((l) => list.appendChild(cell("li", l)));
  box.appendChild(list);
  item.appendChild(box);
}

// the memory's attention per hop: a heat map of the utterances read most (in the dialog's order), collapsed
function attention(hops) {
  const rows = new Map();  // index in the dialog -> {utterance, weights per hop}
  hops.forEach((hop, h) => hop.forEach((r) => {
    if (!rows.has(r.index)) {
      rows.set(r.index, {utterance: r.utterance, weights: []});
    }
    rows.get(r.index).weights[h] = r.weight;
  }));
  const most = (row) => Math.max(...row.weights.map((w) => w || 0));
  const shown = [...rows.entries()].sort((a, b) => most(b[1]) - most(a[1])).slice(0, SHOWN)
    .sort((a, b) => a[0] - b[0]);
  const strongest = hops.map((hop) => (hop.length ? hop[0].index : -1));
  const box = document.createElement("details");
  box.className = "attention";
  box.setAttribute("data-testid", "attention");
  const top = hops[hops.length - 1][0];
  box.appendChild(cell("summary", "memory, " + hops.length + " hop" + (hops.length > 1 ? "s" : "") +
    ": read most \u201c" + top.utterance + "\u201d (" + top.weight.toFixed(2) + ")"));
  const table = document.createElement("table");
  table.appendChild(cell("caption", rows.size > shown.length ?
    "The " + shown.length + " utterances read most, of " + rows.size + " in memory" : "The utterances in memory"));
  const head = document.createElement("tr");
  head.appendChild(cell("th", "Utterance"));
  hops.forEach((_, h) => head.appendChild(cell("th", "Hop " + (h + 1))));
  table.createTHead().appendChild(head);
  const body = table.createTBody();
  for (const [index, row] of shown) {
    const tr = document.createElement("tr");
    tr.dataset.index = String(index);
    tr.appendChild(cell("td", row.utterance, "statement"));
    hops.forEach((_, h) => tr.appendChild(weightCell(row.weights[h], h, strongest[h] === index)));
    body.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

async function send(event) {
  event.preventDefault();
  showError("");
  const input = byId("turn");
  const button = byId("send");
  const text = input.value;
  const asked = conversation;
  button.disabled = true;
  button.textContent = "Thinking\u2026";
  try {
    const result = await getJSON("chat", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({history: memorySize ? history.slice(-memorySize) : history, turn: text}),
    });
    if (asked !== conversation) {
      return;  // the user started a new conversation meanwhile
    }
    showUser(text, result.replies.length ? result.replies[0].unknown_words : []);
    result.replies.forEach(showReply);
    history = result.history;
    input.value = "";
    byId("conversation").lastElementChild?.scrollIntoView({block: "end"});
  } catch (e) {
    showError(e.message);  // the turn stays in the box, the conversation as it was
  } finally {
    button.disabled = false;
    button.textContent = "Send";
    input.focus();
  }
}

function newConversation() {
  conversation += 1;
  history = [];
  byId("conversation").replaceChildren();
  showError("");
  byId("turn").value = "";
  byId("turn").focus();
}

async function start() {
  byId("say-form").addEventListener("submit", send);
  byId("new").addEventListener("click", newConversation);
  try {
    await loadModel();
  } catch (e) {
    showError(e.message);
  }
}

start();
"""

STYLE = PAGE_STYLE + """#conversation { list-style: none; padding: 0; display: flex; flex-direction: column;
  gap: 0.5rem; }
.turn { max-width: 75%; padding: 0.4rem 0.8rem; border-radius: 0.8rem; }
.turn p { margin: 0.2rem 0; }
.turn.user { align-self: flex-end; background: #1d4ed8; color: #fff; }
.turn.user .note { color: #dbeafe; font-size: 0.9rem; }
.turn.bot { align-self: flex-start; background: #f1f5f9; }
.turn.kb { align-self: flex-start; font-size: 0.85rem; color: #555; padding: 0 0.8rem; }
.turn.kb ul { margin: 0.2rem 0; padding-left: 1.2rem; font-family: ui-monospace, monospace; }
.probability { color: #555; font-size: 0.8rem; }
details.attention { font-size: 0.85rem; color: #333; }
details.attention table { font-size: 0.85rem; }
summary { cursor: pointer; }
.ask-row button { white-space: nowrap; }
form label { display: block; font-weight: 600; margin: 0.6rem 0 0.3rem; }
"""

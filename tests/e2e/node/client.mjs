// The official Socket.IO client (socket.io-client, unchanged, public API only), driven
// by tests/e2e/test_official_client.py over JSON lines.
//
// stdin, one command per line:
//   {"id": 1, "cmd": "connect", "url": "...", "token": "...", "transports": ["websocket"]}
//   {"id": 2, "cmd": "send", "data": {conversation_id, text, client_msg_id}}   message:send
//   {"id": 3, "cmd": "emit", "event": "conversation:join", "data": {...}}      any event
//   {"id": 4, "cmd": "sync", "data": {"conversations": {...}, "mode": "events"?}}
//   {"id": 5, "cmd": "disconnect"}   socket.disconnect(): stays away
//   {"id": 6, "cmd": "reconnect"}    socket.connect() after a disconnect
//   {"id": 7, "cmd": "drop"}         socket.io.engine.close(): the library reconnects itself
//   {"id": 8, "cmd": "exit"}
// stdout, one JSON object per line: {"type": "ack", "id", "data"} for emits,
// {"type": "done", "id"} for other commands, {"type": "error", "id", "message"},
// {"type": "event", "event", "data"} for every event received, and the lifecycle:
// connect, disconnect, connect_error, reconnect_attempt, reconnect.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;

function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function open(cmd) {
  if (socket) socket.disconnect();
  socket = io(cmd.url, {
    auth: { token: cmd.token },
    transports: cmd.transports ?? ["websocket"],
    reconnectionDelay: cmd.reconnectionDelay ?? 100,
    reconnectionDelayMax: cmd.reconnectionDelayMax ?? 1000,
    timeout: 10000,
  });
  socket.on("connect", () =>
    out({ type: "connect", sid: socket.id, transport: socket.io.engine.transport.name }),
  );
  socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
  socket.on("connect_error", (err) =>
    out({ type: "connect_error", message: err.message, data: err.data ?? null }),
  );
  socket.onAny((event, ...args) => out({ type: "event", event, data: args[0] ?? null }));
  socket.io.on("reconnect_attempt", (attempt) => out({ type: "reconnect_attempt", attempt }));
  socket.io.on("reconnect", (attempt) => out({ type: "reconnect", attempt }));
}

async function emit(id, event, data, timeoutMs) {
  try {
    const ack = await socket.timeout(timeoutMs ?? 15000).emitWithAck(event, data);
    out({ type: "ack", id, event, data: ack });
  } catch (err) {
    out({ type: "error", id, message: String(err?.message ?? err) });
  }
}

function handle(cmd) {
  const { id } = cmd;
  switch (cmd.cmd) {
    case "connect":
      open(cmd);
      return out({ type: "done", id });
    case "send":
      return emit(id, "message:send", cmd.data, cmd.timeout);
    case "emit":
      return emit(id, cmd.event, cmd.data, cmd.timeout);
    case "sync":
      return emit(id, "sync", cmd.data, cmd.timeout);
    case "disconnect":
      socket.disconnect();
      return out({ type: "done", id });
    case "reconnect":
      socket.connect();
      return out({ type: "done", id });
    case "drop":
      socket.io.engine.close();
      return out({ type: "done", id });
    case "exit":
      if (socket) socket.disconnect();
      out({ type: "done", id });
      return process.exit(0);
    default:
      return out({ type: "error", id, message: `unknown command ${cmd.cmd}` });
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    return out({ type: "error", id: null, message: `bad json: ${err.message}` });
  }
  try {
    handle(cmd);
  } catch (err) {
    out({ type: "error", id: cmd.id ?? null, message: String(err?.message ?? err) });
  }
});
lines.on("close", () => {
  if (socket) socket.disconnect();
  process.exit(0);
});

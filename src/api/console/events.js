"use strict";
// Server-Sent Events with an Authorization header (EventSource cannot send one): calls
// onEvent(kind, data) for each event until the stream ends. A refused key or an unknown stream
// throws an error marked `refused`.
async function readEvents(url, key, onEvent) {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    const error = new Error(`${response.status} ${response.statusText}`);
    error.refused = [401, 403, 404].includes(response.status);
    throw error;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const kind = lines.find((l) => l.startsWith("event:"))?.slice(6).trim();
      const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (kind) onEvent(kind, data);
    }
  }
}

// Follows an event stream for as long as the page is open: glasses lose Wi-Fi and the service
// restarts, and nobody should have to reload the page. Reconnects after 1 s, doubling to 30 s,
// and gives up only on a refused key. onLost(message, retrying) says why the stream is down.
async function followEvents(url, key, onEvent, onLost) {
  let wait = 1000;
  for (;;) {
    try {
      await readEvents(url, key, (kind, data) => {
        if (kind === "ready") wait = 1000;
        onEvent(kind, data);
      });
      onLost("the service closed the stream", true);
    } catch (err) {
      onLost(err.message, !err.refused);
      if (err.refused) return;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 30000);
  }
}

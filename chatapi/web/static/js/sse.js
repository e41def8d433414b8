// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, nor POST a
// body. The response is read as text and cut into events by the rules of the HTML standard's
// event-stream format: blank line between events, `field: value` lines, `:` comments
// (the server's `: ping`) ignored. Each event is yielded as {id, event, data} with `data`
// parsed as JSON.
const BOUNDARY = /\r\n\r\n|\n\n|\r\r/;

export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let match;
    while ((match = BOUNDARY.exec(buffer))) {
      const block = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const parsed = parse(block);
      if (parsed) yield parsed;
    }
  }
}

function parse(block) {
  const event = { id: null, event: 'message', data: [] };
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') event.data.push(value);
    else if (field === 'event') event.event = value;
    else if (field === 'id') event.id = value;
  }
  if (!event.data.length) return null;
  return { ...event, data: JSON.parse(event.data.join('\n')) };
}

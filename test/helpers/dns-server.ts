// A small authoritative DNS server on UDP loopback for tests: answers SRV and
// A questions from a table (RFC 1035 wire format, RFC 2782 SRV data), NXDOMAIN
// for other names, NODATA for other types. Point a dns.promises.Resolver at it
// with setServers([`127.0.0.1:${port}`]).
import dgram from 'node:dgram';

export interface DnsZone {
  srv?: Record<string, { priority: number; weight: number; port: number; target: string }[]>;
  a?: Record<string, string[]>;
}

function encodeName(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

/** The question's name, type and where it ends (no compression in questions). */
function readQuestion(q: Buffer): { name: string; type: number; end: number } | null {
  let i = 12;
  const labels: string[] = [];
  while (i < q.length && q[i] !== 0) {
    const len = q[i]!;
    if (len > 63 || i + 1 + len > q.length) return null;
    labels.push(q.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += 1 + len;
  }
  if (i + 5 > q.length) return null;
  return { name: labels.join('.').toLowerCase(), type: q.readUInt16BE(i + 1), end: i + 5 };
}

export async function startDnsServer(zone: DnsZone): Promise<{ port: number; queries: string[]; close(): void }> {
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (q, from) => {
    const question = readQuestion(q);
    if (!question) return;
    queries.push(`${question.type === 33 ? 'SRV' : question.type === 1 ? 'A' : question.type} ${question.name}`);
    const answers: Buffer[] = [];
    const srv = zone.srv?.[question.name];
    const a = zone.a?.[question.name];
    if (question.type === 33) {
      for (const r of srv ?? []) {
        const target = encodeName(r.target);
        const data = Buffer.alloc(6);
        data.writeUInt16BE(r.priority, 0);
        data.writeUInt16BE(r.weight, 2);
        data.writeUInt16BE(r.port, 4);
        answers.push(record(33, Buffer.concat([data, target])));
      }
    } else if (question.type === 1) {
      for (const ip of a ?? []) answers.push(record(1, Buffer.from(ip.split('.').map(Number))));
    }
    const known = srv !== undefined || a !== undefined;
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8400 | (q.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR, AA, RD copied; NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    sock.send(Buffer.concat([header, q.subarray(12, question.end), ...answers]), from.port, from.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, queries, close: () => sock.close() };
}

/** One answer record whose name points at the question (offset 12). */
function record(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(60, 6);
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

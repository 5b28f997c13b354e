// A hostile callee for our outbound SIP calls (sip/uac.ts): it answers each
// INVITE it receives with a seeded script of responses a broken or malicious
// trunk could send to an outstanding INVITE: odd 1xx (no To-tag, no Contact,
// SDP that is garbage or points at the cloud metadata address), 2xx without
// or with unusable SDP, retransmitted and forked 2xx, 4xx/5xx/6xx of every
// kind, 401/407 with missing or absurd challenges, redirects, byte-flipped
// and header-damaged responses, responses for another Call-ID or branch, and
// silence. Used by test/outbound/sip-fuzz.test.ts (the fuzzed server of
// `aybiza fuzz` refuses loopback trunks, as on the internet, so this runs
// against an in-process server that allows them).
import dgram from 'node:dgram';
import type { Rand } from './random.js';

const SDP = (ip: string, port: number, extra = '') =>
  `v=0\r\no=callee 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n${extra}`;

interface Invite {
  text: string;
  from: { address: string; port: number };
  header(name: string): string;
}

type Step = { delayMs: number; data: Buffer };

export class HostileCallee {
  readonly socket = dgram.createSocket('udp4');
  port = 0;
  /** INVITEs received (a retransmission or an authenticated retry counts too). */
  invites = 0;
  /** The script each INVITE got, for the report. */
  readonly scripts: string[] = [];
  private readonly seen = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly r: Rand, private readonly mediaPort = 9) {}

  async open(): Promise<number> {
    await new Promise<void>((res) => this.socket.bind(0, '127.0.0.1', () => res()));
    this.port = this.socket.address().port;
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf.toString('latin1'), rinfo));
    return this.port;
  }

  private onMessage(text: string, from: dgram.RemoteInfo): void {
    const method = /^(\S+) /.exec(text)?.[1];
    const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(text)?.[1]?.trim() ?? '';
    if (method === 'BYE' || method === 'CANCEL' || method === 'OPTIONS') return this.send(from, this.response(200, 'OK', { text, from, header }));
    if (method !== 'INVITE') return;
    // A retransmission of an INVITE already scripted gets nothing more (its script is running).
    const key = `${header('Call-ID')}|${/branch=([^;\s,]+)/.exec(header('Via'))?.[1]}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.invites++;
    const inv = { text, from, header };
    const [name, steps] = this.script(inv);
    this.scripts.push(name);
    for (const s of steps) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.socket.send(s.data, from.port, from.address);
      }, s.delayMs);
      this.timers.add(t);
    }
  }

  private send(to: { address: string; port: number }, data: Buffer): void {
    this.socket.send(data, to.port, to.address);
  }

  /** A response to `inv`, built as a UAS would, then changed by `o`. */
  private response(code: number, reason: string, inv: Invite, o: { tag?: string | null; body?: string; extra?: string[]; contact?: boolean; via?: string; callId?: string } = {}): Buffer {
    const tag = o.tag === undefined ? 'hc' + inv.header('Call-ID').length : o.tag;
    const body = o.body ?? '';
    return Buffer.from([
      `SIP/2.0 ${code} ${reason}`, `Via: ${o.via ?? inv.header('Via')}`, `From: ${inv.header('From')}`,
      `To: ${inv.header('To')}${tag ? `;tag=${tag}` : ''}`, `Call-ID: ${o.callId ?? inv.header('Call-ID')}`, `CSeq: ${inv.header('CSeq')}`,
      ...(o.contact === false ? [] : [`Contact: <sip:callee@127.0.0.1:${this.port}>`]),
      ...(o.extra ?? []), ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body,
    ].join('\r\n'), 'latin1');
  }

  private script(inv: Invite): [string, Step[]] {
    const r = this.r;
    const ok = (o: Parameters<HostileCallee['response']>[3] = {}) => this.response(200, 'OK', inv, { body: SDP('127.0.0.1', this.mediaPort), ...o });
    const at = (ms: number, data: Buffer): Step => ({ delayMs: ms, data });
    const ringing = at(10, this.response(180, 'Ringing', inv));
    const scripts: [string, () => Step[]][] = [
      ['silence', () => []],
      ['final_random', () => [ringing, at(40, this.response(r.pick([300, 302, 400, 403, 404, 408, 415, 420, 480, 481, 486, 487, 488, 500, 503, 600, 603, 604, 699]), 'X', inv))]],
      ['final_odd_code', () => [at(10, this.response(r.pick([199, 299, 399, 0, 1, 99, 700, 999]), r.token(), inv))]],
      ['ok_no_sdp', () => [ringing, at(40, ok({ body: '' }))]],
      ['ok_garbage_sdp', () => [ringing, at(40, ok({ body: r.text(400) || 'v=1\r\n' }))]],
      ['ok_metadata_media', () => [at(20, ok({ body: SDP('169.254.169.254', 80) }))]],
      ['ok_no_common_codec', () => [at(20, ok({ body: SDP('127.0.0.1', this.mediaPort).replace('RTP/AVP 0 101', 'RTP/AVP 18') }))]],
      ['ok_no_to_tag', () => [at(20, ok({ tag: null }))]],
      ['ok_no_contact', () => [at(20, ok({ contact: false }))]],
      ['ok_retransmitted', () => Array.from({ length: 1 + r.int(8) }, (_, i) => at(20 + i * 5, ok()))],
      ['ok_forked', () => [at(20, ok({ tag: 'forka' })), at(25, ok({ tag: 'forkb' }))]],
      ['early_sdp_then_ok', () => [at(10, this.response(183, 'Session Progress', inv, { body: SDP('127.0.0.1', this.mediaPort) })), at(60, ok())]],
      ['early_garbage_sdp', () => [at(10, this.response(183, 'Session Progress', inv, { body: r.text(300) || 'x' }))]],
      ['provisional_flood', () => Array.from({ length: 5 + r.int(30) }, (_, i) => at(5 + i * 3, this.response(100 + r.int(100), r.token(), inv, { tag: r.chance(0.5) ? null : r.token() })))],
      ['challenge_missing', () => [at(10, this.response(r.pick([401, 407]), 'Auth', inv))]],
      ['challenge_odd', () => [at(10, this.response(407, 'Proxy Auth', inv, { extra: [`Proxy-Authenticate: ${r.pick(['Digest', 'Digest algorithm=SHA-999', 'Basic realm="x"', 'Digest realm="x", nonce=""', `Digest realm="${r.text(100)}", nonce="${r.token()}", qop="auth-int", stale=true`])}`] }))]],
      ['challenge_loop', () => [at(10, this.response(401, 'Unauthorized', inv, { extra: ['WWW-Authenticate: Digest realm="x", nonce="n1", stale=true, algorithm=MD5'] }))]],
      ['other_call_id', () => [at(10, this.response(200, 'OK', inv, { callId: `other-${r.token()}`, body: SDP('127.0.0.1', this.mediaPort) }))]],
      ['two_vias', () => [at(10, this.response(486, 'Busy', inv, { via: `${inv.header('Via')}, SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx` }))]],
      ['wrong_branch', () => [at(10, this.response(486, 'Busy', inv, { via: inv.header('Via').replace(/branch=[^;\s,]+/, 'branch=z9hG4bKnope') }))]],
      ['byte_flipped', () => [ringing, at(30, r.mutate(r.chance(0.5) ? ok() : this.response(486, 'Busy Here', inv), 1 + r.int(6)))]],
      ['header_damage', () => [at(10, Buffer.from(ok().toString('latin1').replace(/^Content-Length: \d+/m, `Content-Length: ${r.pick(['-1', '99999', 'x', '0'])}`).replace(/^CSeq: .*$/m, (c) => r.chance(0.5) ? c : `CSeq: ${r.pick(['1 BYE', '99999999999 INVITE', 'x INVITE'])}`), 'latin1'))]],
    ];
    const [name, make] = r.pick(scripts);
    return [name, make()];
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.socket.close();
  }
}

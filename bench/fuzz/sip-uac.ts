// A hostile callee for our outbound SIP calls (sip/uac.ts): it answers each
// INVITE it receives with a seeded script of responses a broken or malicious
// trunk could send to an outstanding INVITE: odd 1xx (no To-tag, no Contact,
// SDP that is garbage or points at the cloud metadata address), 2xx without
// or with unusable SDP, retransmitted and forked 2xx, 4xx/5xx/6xx of every
// kind, 401/407 with missing or absurd challenges, redirects, byte-flipped
// and header-damaged responses, responses for another Call-ID or branch, and
// silence. Used by test/outbound/sip-fuzz.test.ts, and by `aybiza fuzz`
// (boundary sip_uac: UacFuzzer places the calls through POST /v1/calls of a
// server of its own that allows loopback trunks, as the main fuzzed server,
// like one on the internet, refuses them).
import dgram from 'node:dgram';
import type { Rand } from './random.js';
import { api } from './target.js';

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
  /** The last script by Call-ID (bounded: a run places a few thousand calls at most). */
  private readonly byCallId = new Map<string, string>();
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
    if (this.byCallId.size < 100_000) this.byCallId.set(header('Call-ID'), name);
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

  scriptOf(callId: string): string | undefined {
    return this.byCallId.get(callId);
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.socket.close();
  }
}

/** What no call may end as other than failed: no answer at all, media at the metadata address, no common codec. */
const MUST_FAIL = new Set(['silence', 'ok_metadata_media', 'ok_no_common_codec']);
/** The ring time before CANCEL (30 s, SipCarrier's default) and the transaction's own end after it. */
const FINAL_WITHIN_MS = 45_000;
const FINAL = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Outbound calls through POST /v1/calls of the server at `base`, over a trunk
 * whose outbound target is `callee`: an answered call is hung up through the
 * API after a moment, the rest must end by themselves with a final status.
 */
export class UacFuzzer {
  calls = 0;
  readonly outcomes: Record<string, number> = {};
  readonly violations: string[] = [];
  private dial: Record<string, string> = {};

  constructor(private readonly r: Rand, private readonly base: string, private readonly adminKey: string, readonly callee: HostileCallee) {}

  /** The demo tenant may dial the US, with no daily cap in reach, over a trunk to the callee. */
  async open(): Promise<void> {
    await this.callee.open();
    const tenantId = String(((await api(this.base, this.adminKey, 'GET', '/v1/tenants?limit=1')).items as { id: string }[])[0]!.id);
    const agentId = String(((await api(this.base, this.adminKey, 'GET', '/v1/agents?limit=200')).items as { id: string; tenantId: string }[]).find((x) => x.tenantId === tenantId)!.id);
    await api(this.base, this.adminKey, 'PATCH', `/v1/tenants/${tenantId}`, { outbound: { allowedCountries: ['US'], dailyCap: 10_000_000 } });
    const trunk = await api(this.base, this.adminKey, 'POST', '/v1/sip-trunks', {
      tenantId, name: 'fuzz: hostile callee', allowedCidrs: ['127.0.0.1/32'],
      outbound: { uri: `sip:127.0.0.1:${this.callee.port}`, transport: 'udp', username: 'fuzz', password: 'fuzz-password-1' },
    });
    this.dial = { tenantId, agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId: String(trunk.id) };
  }

  private violate(v: string): void {
    if (this.violations.length < 20) this.violations.push(v);
  }

  private request(method: string, p: string, body?: unknown): Promise<Response> {
    return fetch(this.base + p, {
      method, headers: { authorization: `Bearer ${this.adminKey}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  }

  /** One call, from POST /v1/calls to its final status. */
  async step(): Promise<void> {
    this.calls++;
    const res = await this.request('POST', '/v1/calls', this.dial);
    if (res.status !== 201) return this.violate(`POST /v1/calls answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const id = String(((await res.json()) as { id: string }).id);
    const holdMs = this.r.range(500, 3000);
    const t0 = performance.now();
    let hungUp = false;
    let call: { status: string; answeredAt: string | null; externalId: string } = { status: 'queued', answeredAt: null, externalId: '' };
    while (!FINAL.has(call.status) && performance.now() - t0 < FINAL_WITHIN_MS) {
      await sleep(300);
      const got = await this.request('GET', `/v1/calls/${id}`);
      if (!got.ok) return this.violate(`GET /v1/calls/${id} answered ${got.status}`);
      call = (await got.json()) as typeof call;
      if (call.answeredAt && !hungUp && Date.now() - Date.parse(call.answeredAt) > holdMs) {
        hungUp = true;
        const h = await this.request('POST', `/v1/calls/${id}/hangup`);
        if (!h.ok) this.violate(`POST /v1/calls/${id}/hangup answered ${h.status}`);
      }
    }
    const script = this.callee.scriptOf(call.externalId) ?? 'no INVITE seen';
    const key = `${script} → ${call.status}`;
    this.outcomes[key] = (this.outcomes[key] ?? 0) + 1;
    if (!FINAL.has(call.status)) this.violate(`call ${id} (${script}) still ${call.status} after ${FINAL_WITHIN_MS / 1000} s`);
    else if (MUST_FAIL.has(script) && call.status !== 'failed') this.violate(`call ${id} (${script}) ended ${call.status}, not failed`);
  }

  close(): void {
    this.callee.close();
  }
}

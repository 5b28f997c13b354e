// Toll-fraud and consent guards, checked before every outbound dial and every
// transfer: the destination's country must be one the tenant allows (none by
// default: outbound off), the number must not be on the tenant's do-not-call
// list, and a dial must fit under the tenant's cap per UTC day (counted in
// PostgreSQL, so every node shares it). Every refusal is counted
// (aybiza_outbound_refused_total{kind,reason}, closed labels) and audited.
import type { ControlPlane } from '../store/index.js';
import type { Principal } from '../store/types.js';
import { audit } from '../store/audit.js';
import { outboundRefused } from '../metrics/index.js';
import { log } from '../log.js';
import { countryOf } from './countries.js';

export type RefusalCode = 'destination_not_allowed' | 'dnc' | 'daily_cap';

/** A dial or transfer the guards refused; the API answers 422 with `code`. Nothing was dialled. */
export class DialRefused extends Error {
  readonly status = 422;
  constructor(readonly code: RefusalCode, message: string) {
    super(message);
    this.name = 'DialRefused';
  }
}

export const DEFAULT_DAILY_CAP = 1000;
export const E164 = /^\+[1-9]\d{6,14}$/;

/** Who the audit log names for dials that no API key asked for (campaigns, transfers). */
export const OUTBOUND_ACTOR: Principal = { keyId: 'system', keyName: 'outbound dialer', tenantId: null, platformAdmin: true, scopes: [] };

export class OutboundGuards {
  constructor(private readonly cp: ControlPlane) {}

  /**
   * Runs every guard for one dial and, if all pass, counts it against the
   * day's cap (the count is the last step: a refused dial costs nothing).
   */
  async checkDial(tenantId: string, to: string, who: Principal = OUTBOUND_ACTOR): Promise<void> {
    await this.checkDestination('dial', tenantId, to, who);
    if (!(await this.countDial(tenantId))) {
      const cap = (await this.cp.tenants.get(tenantId))?.outbound.dailyCap ?? DEFAULT_DAILY_CAP;
      await this.refuse('dial', tenantId, to, who, new DialRefused('daily_cap', `the tenant's daily dial cap (${cap} per UTC day) is reached`));
    }
  }

  /**
   * The guards for a transfer target: country and do-not-call (a transfer
   * is not a new dial against the cap). A sip: URI is not a telephone number:
   * its reach is the agent's transfer.targets, checked by the pipeline.
   */
  async checkTransfer(tenantId: string, target: string, who: Principal = OUTBOUND_ACTOR): Promise<void> {
    if (/^sips?:/i.test(target)) return;
    await this.checkDestination('transfer', tenantId, target, who);
  }

  /** checkTransfer as a value: the refusal's code, or null when the transfer may go ahead. */
  async transferRefusal(tenantId: string, target: string): Promise<RefusalCode | null> {
    try {
      await this.checkTransfer(tenantId, target);
      return null;
    } catch (err) {
      if (err instanceof DialRefused) return err.code;
      throw err;
    }
  }

  private async checkDestination(kind: 'dial' | 'transfer', tenantId: string, to: string, who: Principal): Promise<void> {
    const tenant = await this.cp.tenants.get(tenantId);
    const country = E164.test(to) ? countryOf(to) : null;
    if (!tenant || !country || !tenant.outbound.allowedCountries.includes(country)) {
      const why = !country ? 'its country is not known' : `${country} is not in the tenant's outbound.allowedCountries`;
      await this.refuse(kind, tenantId, to, who, new DialRefused('destination_not_allowed', `destination not allowed: ${why}`));
    }
    if (await this.isDnc(tenantId, to)) {
      await this.refuse(kind, tenantId, to, who, new DialRefused('dnc', 'the number is on the tenant\'s do-not-call list'));
    }
  }

  async isDnc(tenantId: string, number: string): Promise<boolean> {
    return (await this.cp.db.pool.query('select 1 from dnc_numbers where tenant_id = $1 and number = $2', [tenantId, number])).rowCount! > 0;
  }

  /** One dial against today's (UTC) cap, atomically on every node; false when the cap is reached. */
  private async countDial(tenantId: string): Promise<boolean> {
    const r = await this.cp.db.pool.query(
      `insert into outbound_dial_counts (tenant_id, day, dials)
         select t.id, (now() at time zone 'utc')::date, 1 from tenants t where t.id = $1 and t.outbound_daily_cap > 0
       on conflict (tenant_id, day) do update set dials = outbound_dial_counts.dials + 1
         where outbound_dial_counts.dials < (select outbound_daily_cap from tenants where id = $1)
       returning dials`,
      [tenantId],
    );
    return r.rowCount === 1;
  }

  /** Dials counted today (UTC) for the tenant. */
  async dialsToday(tenantId: string): Promise<number> {
    const r = await this.cp.db.pool.query(`select dials from outbound_dial_counts where tenant_id = $1 and day = (now() at time zone 'utc')::date`, [tenantId]);
    return (r.rows[0]?.dials as number | undefined) ?? 0;
  }

  private async refuse(kind: 'dial' | 'transfer', tenantId: string, to: string, who: Principal, err: DialRefused): Promise<never> {
    outboundRefused.inc({ kind, reason: err.code });
    log.info('outbound refused by the guards', { kind, tenantId, reason: err.code });
    try {
      await this.cp.db.tx((c) => audit(c, who, tenantId, `outbound.${kind}_refused`, 'call', to.slice(0, 64), undefined, { to: to.slice(0, 300), reason: err.code }));
    } catch (e) {
      // The refusal stands even if the audit write fails (a bad tenant id, a database hiccup).
      log.warn('outbound refusal not audited', { err: (e as Error).message });
    }
    throw err;
  }
}

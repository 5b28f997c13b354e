// E.164 number → ISO 3166 alpha-2 country, for the outbound guards. Country
// calling codes are prefix-free (ITU-T E.164), so the longest code that
// starts the number names the zone. A few codes are shared: +1 (the North
// American Numbering Plan: the area code picks the country), +7 (RU/KZ),
// +44 (GB and the Crown Dependencies), +39 (IT/VA), +47 (NO/SJ), +358
// (FI/AX), +61 (AU/CX/CC); their splits follow the leading digits
// libphonenumber uses. Codes not listed answer null: refused, never guessed.
// A toll-fraud guard must not let a tenant that allows "US" dial Jamaica
// (+1 876): every non-US NANP area code is listed, and premium 900/976 are null.

/** Whole-zone codes → country. */
const ZONES: Record<string, string> = {
  '20': 'EG', '27': 'ZA', '30': 'GR', '31': 'NL', '32': 'BE', '33': 'FR', '34': 'ES', '36': 'HU', '40': 'RO', '41': 'CH', '43': 'AT',
  '45': 'DK', '46': 'SE', '48': 'PL', '49': 'DE', '51': 'PE', '52': 'MX', '54': 'AR', '55': 'BR', '56': 'CL', '57': 'CO', '60': 'MY',
  '62': 'ID', '63': 'PH', '64': 'NZ', '65': 'SG', '66': 'TH', '81': 'JP', '82': 'KR', '84': 'VN', '86': 'CN', '90': 'TR', '91': 'IN',
  '92': 'PK', '94': 'LK', '234': 'NG', '254': 'KE', '351': 'PT', '352': 'LU', '353': 'IE', '354': 'IS', '356': 'MT', '357': 'CY',
  '359': 'BG', '370': 'LT', '371': 'LV', '372': 'EE', '380': 'UA', '385': 'HR', '386': 'SI', '420': 'CZ', '421': 'SK', '852': 'HK',
  '853': 'MO', '880': 'BD', '886': 'TW', '966': 'SA', '971': 'AE', '972': 'IL', '974': 'QA',
};

/** Shared codes: [leading national digits, country] tried first, else the default. */
const SPLIT: Record<string, { default: string; by: [string, string][] }> = {
  '7': { default: 'RU', by: [['33', 'KZ'], ['7', 'KZ']] },
  '44': {
    default: 'GB',
    by: [
      ['1481', 'GG'], ['7781', 'GG'], ['7839', 'GG'], ['7911', 'GG'],
      ['1534', 'JE'], ['7509', 'JE'], ['7700', 'JE'], ['7797', 'JE'], ['7829', 'JE'], ['7937', 'JE'],
      ['1624', 'IM'], ['7524', 'IM'], ['7624', 'IM'], ['7924', 'IM'],
    ],
  },
  '39': { default: 'IT', by: [['06698', 'VA']] },
  '47': { default: 'NO', by: [['79', 'SJ']] },
  '358': { default: 'FI', by: [['18', 'AX']] },
  '61': { default: 'AU', by: [['89162', 'CC'], ['89164', 'CX']] },
};

/** NANP area codes outside the United States (Canada, the Caribbean, US territories with their own ISO codes). */
const NANP: Record<string, string> = {};
const NANP_LISTS: [string, string][] = [
  ['CA', '204 226 236 249 250 257 263 273 289 306 343 354 365 367 368 382 387 403 416 418 428 431 437 438 450 460 468 474 506 514 519 537 548 568 579 581 584 587 600 604 613 622 633 639 644 647 655 672 677 683 688 705 709 742 753 778 780 782 807 819 825 851 867 873 879 902 905 942'],
  ['AG', '268'], ['AI', '264'], ['AS', '684'], ['BB', '246'], ['BM', '441'], ['BS', '242'], ['DM', '767'], ['DO', '809 829 849'],
  ['GD', '473'], ['GU', '671'], ['JM', '658 876'], ['KN', '869'], ['KY', '345'], ['LC', '758'], ['MP', '670'], ['MS', '664'],
  ['PR', '787 939'], ['SX', '721'], ['TC', '649'], ['TT', '868'], ['VC', '784'], ['VG', '284'], ['VI', '340'],
];
for (const [iso, codes] of NANP_LISTS) for (const c of codes.split(' ')) NANP[c] = iso;
/** Premium-rate NANP area codes: never a country a tenant can allow. */
const NANP_PREMIUM = new Set(['900', '976']);

/** The countries this table can name (what outbound.allowedCountries may hold). */
export const KNOWN_COUNTRIES: ReadonlySet<string> = new Set([
  'US', ...Object.values(ZONES), ...Object.values(NANP),
  ...Object.values(SPLIT).flatMap((s) => [s.default, ...s.by.map(([, c]) => c)]),
]);

function nanp(national: string): string | null {
  // NXX-NXX-XXXX: area code and exchange start with 2-9; N11 area codes are service codes.
  if (!/^[2-9]\d{2}[2-9]\d{6}$/.test(national)) return null;
  const area = national.slice(0, 3);
  if (NANP_PREMIUM.has(area) || area[1] === '1' && area[2] === '1') return null;
  return NANP[area] ?? 'US';
}

/** The ISO 3166 alpha-2 country of an E.164 number (`+` and digits), or null when not known here. */
export function countryOf(e164: string): string | null {
  if (!/^\+[1-9]\d{6,14}$/.test(e164)) return null;
  const digits = e164.slice(1);
  if (digits[0] === '1') return nanp(digits.slice(1));
  for (const len of [1, 2, 3]) {
    const cc = digits.slice(0, len);
    const national = digits.slice(len);
    const split = SPLIT[cc];
    if (split) return split.by.find(([p]) => national.startsWith(p))?.[1] ?? split.default;
    if (ZONES[cc]) return ZONES[cc];
  }
  return null;
}

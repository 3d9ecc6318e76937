/** Characters at or above the first surrogate: where UTF-16 order and code-point order part. */
const HIGH = /[\ud800-\uffff]/;

/**
 * Compares two strings in code-point order (the same as UTF-8 byte order), unlike the `<`
 * operator, which compares UTF-16 code units. The two orders differ only where a surrogate
 * (part of a code point above U+FFFF) meets a code unit from U+E000 to U+FFFF, so strings
 * without any code unit from U+D800 up are compared natively.
 *
 * @returns A negative number, zero or a positive number.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  if (!HIGH.test(a) || !HIGH.test(b)) return a < b ? -1 : 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above 0xFFFF, which sort after every BMP
    // code unit, including 0xE000-0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x - y;
    return xs ? 1 : -1;
  }
  return a.length - b.length;
}

/** The Python literal subset numpy headers use: a parser (dicts, tuples, lists, strings, ints, True/False/None) and `repr` writers. */
import { type Descr, malformed } from "./types.ts";

/** A Python tuple in a parsed literal (distinct from a list, as numpy's header check needs). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export type PyValue = string | number | boolean | null | PyTuple | PyValue[] | Map<PyValue, PyValue>;

/**
 * Deepest nesting of brackets accepted: Python's own parser refuses 200 levels
 * ("too many nested parentheses"), so spead2 cannot read deeper headers either.
 * Without a limit a deep header overflowed the JS stack (RangeError).
 */
export const PY_LITERAL_DEPTH_MAX = 199;

/** Parses the Python literal subset numpy headers use: dicts, tuples, lists, strings, ints, True/False/None. */
export function parsePyLiteral(text: string): PyValue {
  let i = 0;
  let depth = 0;
  const n = text.length;
  const fail = (what: string): never => {
    throw malformed(`cannot parse numpy header ${JSON.stringify(text)}: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < n && /\s/.test(text[i])) i++;
  };
  const parseString = (): string => {
    const q = text[i++];
    let out = "";
    while (true) {
      if (i >= n) fail("unterminated string");
      const ch = text[i++];
      if (ch === q) return out;
      if (ch === "\n") fail("newline in string");
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const e = text[i++];
      const simple: Record<string, string> = {
        "\\": "\\",
        "'": "'",
        '"': '"',
        n: "\n",
        t: "\t",
        r: "\r",
        "0": "\0",
        a: "\x07",
        b: "\b",
        f: "\f",
        v: "\v",
      };
      if (e === "x") {
        const hex = text.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail("bad \\x escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 2;
      } else if (e !== undefined && simple[e] !== undefined) {
        out += simple[e];
      } else {
        fail("unsupported escape");
      }
    }
  };
  const parseSeq = (close: string): { items: PyValue[]; trailingComma: boolean } => {
    const items: PyValue[] = [];
    let trailingComma = false;
    ws();
    if (text[i] === close) {
      i++;
      return { items, trailingComma };
    }
    while (true) {
      items.push(parseValue());
      ws();
      if (text[i] === ",") {
        i++;
        ws();
        trailingComma = true;
        if (text[i] === close) {
          i++;
          return { items, trailingComma };
        }
        trailingComma = false;
        continue;
      }
      if (text[i] === close) {
        i++;
        return { items, trailingComma };
      }
      fail(`expected ',' or '${close}'`);
    }
  };
  const parseValue = (): PyValue => {
    if (depth >= PY_LITERAL_DEPTH_MAX) fail(`nesting deeper than ${PY_LITERAL_DEPTH_MAX}`);
    depth++;
    try {
      return parseValueAt();
    } finally {
      depth--;
    }
  };
  const parseValueAt = (): PyValue => {
    ws();
    if (i >= n) fail("unexpected end");
    const ch = text[i];
    if (ch === "'" || ch === '"') return parseString();
    if ((ch === "u" || ch === "U") && (text[i + 1] === "'" || text[i + 1] === '"')) {
      i++;
      return parseString();
    }
    if (ch === "{") {
      i++;
      const map = new Map<PyValue, PyValue>();
      ws();
      if (text[i] === "}") {
        i++;
        return map;
      }
      while (true) {
        const key = parseValue();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const value = parseValue();
        // Dict keys compare by value for the hashable types we produce.
        for (const k of map.keys()) if (k === key) map.delete(k);
        map.set(key, value);
        ws();
        if (text[i] === ",") {
          i++;
          ws();
          if (text[i] === "}") {
            i++;
            return map;
          }
          continue;
        }
        if (text[i] === "}") {
          i++;
          return map;
        }
        fail("expected ',' or '}'");
      }
    }
    if (ch === "(") {
      i++;
      const { items, trailingComma } = parseSeq(")");
      // `(x)` is just x; `(x,)` and `()` are tuples.
      if (items.length === 1 && !trailingComma) return items[0];
      return new PyTuple(items);
    }
    if (ch === "[") {
      i++;
      return parseSeq("]").items;
    }
    const m = /^[+-]?\d+/.exec(text.slice(i));
    if (m) {
      i += m[0].length;
      if (/^[.eEjJxXoObB_]/.test(text.slice(i))) fail("only decimal integers are supported");
      const v = Number(m[0]);
      if (!Number.isSafeInteger(v)) fail("integer too large");
      return v;
    }
    const word = /^[A-Za-z_]\w*/.exec(text.slice(i));
    if (word) {
      i += word[0].length;
      if (word[0] === "True") return true;
      if (word[0] === "False") return false;
      if (word[0] === "None") return null;
      fail(`unexpected name '${word[0]}'`);
    }
    return fail(`unexpected character '${ch}'`);
  };
  const value = parseValue();
  ws();
  if (i !== n) fail("trailing characters");
  return value;
}

export function reprStr(s: string): string {
  // Python's repr: single quotes unless the text has ' and no ".
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += "\\" + q;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + q;
}

export function reprDescr(d: Descr): string {
  if (typeof d === "string") return reprStr(d);
  return "[" + d.map(([name, sub]) => `(${reprStr(name)}, ${reprDescr(sub)})`).join(", ") + "]";
}

export function reprTuple(items: readonly number[]): string {
  if (items.length === 1) return `(${items[0]},)`;
  return `(${items.join(", ")})`;
}

/** The numpy header literal (`{'descr': ..., 'fortran_order': ..., 'shape': ...}`): parsed into a dtype, shape and order, and written back. */
import { SpeadError } from "../errors.ts";
import { DType } from "./dtype.ts";
import { parsePyLiteral, PyTuple, type PyValue, reprDescr, reprStr, reprTuple } from "./py_literal.ts";
import { type Descr, type Order, invalid, malformed } from "./types.ts";

function pyToDescr(v: PyValue): Descr {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    return v.map((entry) => {
      const items = entry instanceof PyTuple ? entry.items : Array.isArray(entry) ? entry : null;
      if (items === null || items.length < 2 || typeof items[0] !== "string") {
        throw malformed("descr is not a valid dtype descriptor");
      }
      if (items.length > 2) throw invalid("sub-array dtype fields are not supported");
      return [items[0], pyToDescr(items[1])] as const;
    });
  }
  throw malformed("descr is not a valid dtype descriptor");
}

/** The parts of a numpy header. */
export interface NumpyHeader {
  readonly dtype: DType;
  readonly shape: number[];
  readonly order: Order;
}

/**
 * Parses a numpy header literal (the value of descriptor field 0x15), e.g.
 * `{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}`, keys in any
 * order. As spead2 requires, the keys must be exactly descr, fortran_order and
 * shape; shape a tuple of non-negative ints; fortran_order a bool.
 * Throws `SpeadError("malformed")` otherwise.
 */
export function parseNumpyHeader(text: string): NumpyHeader {
  const d = parsePyLiteral(text);
  if (!(d instanceof Map)) throw malformed(`numpy header is not a dictionary: ${text}`);
  const keys = [...d.keys()].map((k) => (typeof k === "string" ? k : `<${String(k)}>`)).sort();
  if (keys.length !== 3 || keys[0] !== "descr" || keys[1] !== "fortran_order" || keys[2] !== "shape") {
    throw malformed(`numpy header does not contain the correct keys: ${keys.join(", ")}`);
  }
  const shapeV = d.get("shape");
  if (!(shapeV instanceof PyTuple)) throw malformed(`numpy header shape is not a tuple: ${text}`);
  const shape = shapeV.items.map((x) => {
    if (typeof x === "boolean") return x ? 1 : 0; // Python bools are ints
    if (typeof x !== "number" || x < 0) throw malformed(`numpy header shape is not valid: ${text}`);
    return x;
  });
  const fo = d.get("fortran_order");
  if (typeof fo !== "boolean") throw malformed(`numpy header fortran_order is not a bool: ${text}`);
  let dtype: DType;
  try {
    dtype = DType.from(pyToDescr(d.get("descr")!));
  } catch (err) {
    if (err instanceof SpeadError) throw malformed(`numpy header descr is not valid: ${err.message}`);
    throw err;
  }
  if (dtype.itemsize === 0) throw malformed("numpy header descr has zero size");
  return { dtype, shape, order: fo ? "F" : "C" };
}


/**
 * Formats the numpy header exactly as spead2's sender does (Python `repr` of
 * the dict): `{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}`.
 */
export function formatNumpyHeader(dtype: DType, shape: readonly number[], order: Order): string {
  return `{'descr': ${reprDescr(dtype.descr)}, 'fortran_order': ${order === "F" ? "True" : "False"}, ` +
    `'shape': ${reprTuple(shape)}}`;
}

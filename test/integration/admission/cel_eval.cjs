// SPDX-License-Identifier: Apache-2.0
// Evaluates CEL expressions with @bufbuild/cel for the admission agreement
// test.  Input on stdin: a JSON list of {expression, object}; output on
// stdout: a JSON list of {value: bool} or {error: text}, in the same order.
// JSON objects become CEL maps and integral numbers CEL ints, as the
// apiserver presents an object to a ValidatingAdmissionPolicy.
"use strict";

const { run, isCelError } = require("@bufbuild/cel");

function toCel(v) {
  if (Array.isArray(v)) {
    return v.map(toCel);
  }
  if (v !== null && typeof v === "object") {
    return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  }
  if (typeof v === "number" && Number.isInteger(v)) {
    return BigInt(v);
  }
  return v;
}

function evaluate(item) {
  try {
    const r = run(item.expression, { object: toCel(item.object) });
    if (isCelError(r)) {
      return { error: String(r.message || r) };
    }
    if (typeof r !== "boolean") {
      return { error: "expression returned " + typeof r + ", not a boolean" };
    }
    return { value: r };
  } catch (e) {
    return { error: String(e) };
  }
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(JSON.parse(input).map(evaluate)));
});

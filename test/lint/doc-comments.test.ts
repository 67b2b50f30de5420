import assert from "node:assert/strict";
import { test } from "node:test";
import { undocumentedExports } from "./doc-comments.ts";

const names = (text: string): string[] => undocumentedExports("x.ts", text).map((u) => u.name);

test("exported declarations without a doc comment are listed with their line", () => {
  const text = [
    "export function f(): void {}",
    "export class C {}",
    "export interface I {}",
    "export type T = number;",
    "export const a = 1, b = 2;",
    "export enum E { A }",
  ].join("\n");
  assert.deepEqual(names(text), ["f", "C", "I", "T", "a", "b", "E"]);
  assert.deepEqual(
    undocumentedExports("x.ts", text).map((u) => u.line),
    [1, 2, 3, 4, 5, 5, 6],
  );
});

test("a JSDoc comment with text documents an export; a line comment or an empty JSDoc does not", () => {
  const text = [
    "/** Adds one. */",
    "export function f(): void {}",
    "// not JSDoc",
    "export const g = 1;",
    "/** */",
    "export type T = number;",
    "/** @deprecated */",
    "export interface I {}",
  ].join("\n");
  assert.deepEqual(names(text), ["g", "T", "I"]);
});

test("re-exports, unexported declarations and documented overload sets need nothing", () => {
  const text = [
    'export { x } from "./x.ts";',
    'export type { Y } from "./y.ts";',
    "const local = 1;",
    "function helper(): number { return local; }",
    "export function o(a: string): string;",
    "/** Either. */",
    "export function o(a: number): number;",
    "export function o(a: unknown): unknown { return a; }",
    "export function p(a: string): string;",
    "export function p(a: unknown): unknown { return a; }",
  ].join("\n");
  assert.deepEqual(names(text), ["p"]);
});

test("a local declaration exported by name needs the doc comment, under its exported name", () => {
  const text = [
    "function helper(): number { return 1; }",
    "/** Two. */",
    "const two = 2;",
    "export { helper as help, two };",
  ].join("\n");
  assert.deepEqual(undocumentedExports("x.ts", text), [{ file: "x.ts", line: 1, name: "help" }]);
});

test("export default counts as an export named default", () => {
  assert.deepEqual(names("export default 1;"), ["default"]);
  assert.deepEqual(names("/** One. */\nexport default 1;"), []);
});

test("the file's header (its opening JSDoc, then a blank line) documents the module, not the first export", () => {
  assert.deepEqual(names("/** The module. */\n\nexport const a = 1;"), ["a"]);
  assert.deepEqual(names("/**\n * The module.\n */\n\n/** A. */\nexport const a = 1;"), []);
  assert.deepEqual(names("/** The module. */\n/** A. */\nexport const a = 1;"), []);
  assert.deepEqual(names('/** The module. */\nimport "./x.ts";\n\nexport const a = 1;'), ["a"]);
  assert.deepEqual(names("/** A, with no header. */\nexport const a = 1;"), []);
  assert.deepEqual(names("const b = 1;\n/** B. */\n\nexport const a = b;"), []);
});

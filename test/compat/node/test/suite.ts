// The whole suite in one process: node_test.go runs
// `node --import tsx --test test/suite.ts`, which imports every
// test/*.test.ts (each also runs on its own: node --import tsx --test
// test/basic.test.ts). One process instead of one per file saves a
// TypeScript start-up per file, which counts on a busy CI machine. The
// files use their own tenants or read-only checks, so the order does not
// matter.
import { readdirSync } from "node:fs";

const dir = new URL(".", import.meta.url);
for (const file of readdirSync(dir).filter((f) => f.endsWith(".test.ts")).sort()) {
  await import(new URL(file, dir).href);
}

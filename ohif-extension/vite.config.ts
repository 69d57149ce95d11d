import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// Library mode: ES modules OHIF imports by URL (extension.js, mode.js) and the worklist page's
// script; React is bundled (see README: it renders only inside the extension's own roots).
export default defineConfig({
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    minify: true,
    lib: {
      entry: {
        extension: resolve(import.meta.dirname, "src/index.ts"),
        mode: resolve(import.meta.dirname, "src/mode.ts"),
        worklist: resolve(import.meta.dirname, "src/worklist/main.ts"),
      },
      formats: ["es"],
    },
    rollupOptions: { output: { chunkFileNames: "chunks/[name]-[hash].js" } },
  },
  test: { include: ["test/**/*.test.ts", "test/**/*.test.tsx"], environment: "node" },
});

// ESLint 9 flat config: eslint's and typescript-eslint's recommended rules over src/, test/ and bench/.
// `npm run lint` runs it (CI too); formatting is prettier's (`npm run format:check`), not the linter's.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "data/**", "src/console/web/dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.tsx", "**/*.mts"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    rules: {
      // A leading underscore names what is left out on purpose: `const { taskId: _drop, ...rest } = t`, an
      // argument an interface passes but this implementation does not need.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
);

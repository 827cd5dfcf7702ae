// ESLint 9 flat config: eslint's and typescript-eslint's recommended rules over src/, test/ and bench/.
// `npm run lint` runs it (CI too); it also checks the layout (@stylistic: the code's own style — double quotes,
// semicolons, two-space indents, trailing commas on multi-line literals, one blank line at most) and `npm run format`
// (eslint --fix) applies it. Prettier was tried and not kept: at any print width it rewrote 220-280 files and turned
// long one-line statements into runs of short lines, which multiplied the places sharing six lines (38 -> 52-113
// pairs by `duplicates`).
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import stylistic from "@stylistic/eslint-plugin";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "data/**", "src/console/web/dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.tsx", "**/*.mts"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    plugins: { "@stylistic": stylistic },
    rules: {
      "@stylistic/semi": ["error", "always"],
      "@stylistic/quotes": ["error", "double", { avoidEscape: true, allowTemplateLiterals: "always" }],
      "@stylistic/comma-dangle": ["error", { arrays: "always-multiline", objects: "always-multiline", imports: "always-multiline", exports: "always-multiline", functions: "always-multiline", enums: "always-multiline", generics: "ignore", tuples: "always-multiline" }],
      "@stylistic/indent": ["error", 2, { SwitchCase: 1, ignoredNodes: ["TemplateLiteral *", "ConditionalExpression", "BinaryExpression", "LogicalExpression"] }],
      "@stylistic/no-trailing-spaces": "error",
      "@stylistic/eol-last": "error",
      "@stylistic/no-tabs": "error",
      "@stylistic/brace-style": ["error", "1tbs", { allowSingleLine: true }],
      "@stylistic/keyword-spacing": "error",
      "@stylistic/space-infix-ops": "error",
      
      "@stylistic/arrow-parens": ["error", "always"],
      "@stylistic/no-multiple-empty-lines": ["error", { max: 1 }],
      // A leading underscore names what is left out on purpose: `const { taskId: _drop, ...rest } = t`, an
      // argument an interface passes but this implementation does not need.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
);

// Declarations shared by the web UI's browser scripts (operator/cerebelum_operator/web/static/*.js,
// plain JavaScript typed with JSDoc and checked by `npm run typecheck`). Listed first in
// tsconfig.json's `include`, so the project has an input before any script exists.
export {};

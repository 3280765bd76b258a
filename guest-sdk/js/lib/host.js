// The host's `log` import. Natively (node --test) there is none: `log` writes to stderr. The
// component build (build.mjs) replaces this module with host-component.js.
export const hostLog = null;

// A hook returns `unchanged` to say it left the object as it was given. The SDK then answers with
// the state alone, and need not copy the object before the hook to find out whether it was changed
// in place (docs/plugin-guide.md, docs/performance.md).

/** Returned by a hook that did not change its object. One symbol for every copy of the SDK. */
export const unchanged: unique symbol = Symbol.for('keyhold-plugin-sdk.unchanged');
export type Unchanged = typeof unchanged;

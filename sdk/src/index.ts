export * from './duration.js';
export * from './hooks.js';
export * from './model.js';
export * from './protocol.js';
export * from './untyped-meta.js';
export * from './veto.js';

export * from './hooks.js';
export * from './model.js';
export * from './protocol.js';

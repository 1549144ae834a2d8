// keyhold-plugin-sdk/testing: unit-test a plugin in-process, without a server or a child process.
// To test it as a real child through the real host, see keyhold's src/testing/plugin-child.ts.
export * from './fakes.js';
export * from './harness.js';

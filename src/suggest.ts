// "Did you mean …?" lives in the SDK, which plugins share with the server: plugins refuse a
// mistyped name in their config with the same help the server gives for its own settings.
export { didYouMean } from 'keyhold-plugin-sdk';

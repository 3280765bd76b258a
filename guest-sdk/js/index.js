// sluice-transform: write Sluice transforms in JavaScript, built into WebAssembly components
// with componentize-js (build.mjs). The API is the one guest-sdk/API.md gives for all three
// SDKs; `testing.js` runs a transform natively under `node --test`.
//
//   import { exportTransform, Interest } from 'sluice-transform';
//
//   class Redact {
//     interest() { return Interest.columns(['email']); }
//     process(event) {
//       if (event.get('email') != null) event.set('email', '<redacted>');
//     }
//   }
//
//   export const { init, transform } = exportTransform(Redact);

export {
  SluiceError, Float32, Double, Decimal, Json, Date_, DateTime, Timestamp, Time,
  contractJson, compareText, parseRustF64, rustDebug,
} from './lib/values.js';
export { Kind, Config, Interest, Event } from './lib/event.js';
export { exportTransform, log } from './lib/component.js';

// SHA-256 (FIPS 180-4), synchronous and dependency-free: the component has no WebCrypto
// digest that returns without awaiting, and `process` must not await.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const W = new Int32Array(64);
const H = new Int32Array(8);

function blocks(m, n) {
  let h0 = H[0], h1 = H[1], h2 = H[2], h3 = H[3], h4 = H[4], h5 = H[5], h6 = H[6], h7 = H[7];
  for (let off = 0; off < n; off += 64) {
    for (let t = 0; t < 16; t++) {
      const j = off + t * 4;
      W[t] = (m[j] << 24) | (m[j + 1] << 16) | (m[j + 2] << 8) | m[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = W[t - 15];
      const b = W[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    let t1;
    // Eight rounds per pass, the variables' roles rotating instead of their values moving
    // (each statement costs in the component's interpreter).
    for (let t = 0; t < 64; t += 8) {
      t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + ((e & f) ^ (~e & g)) + K[t + 0] + W[t + 0]) | 0;
      d = (d + t1) | 0;
      h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + ((d & e) ^ (~d & f)) + K[t + 1] + W[t + 1]) | 0;
      c = (c + t1) | 0;
      g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) ^ (h & b) ^ (a & b))) | 0;
      t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + ((c & d) ^ (~c & e)) + K[t + 2] + W[t + 2]) | 0;
      b = (b + t1) | 0;
      f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) ^ (g & a) ^ (h & a))) | 0;
      t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + ((b & c) ^ (~b & d)) + K[t + 3] + W[t + 3]) | 0;
      a = (a + t1) | 0;
      e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) ^ (f & h) ^ (g & h))) | 0;
      t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + ((a & b) ^ (~a & c)) + K[t + 4] + W[t + 4]) | 0;
      h = (h + t1) | 0;
      d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) ^ (e & g) ^ (f & g))) | 0;
      t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + ((h & a) ^ (~h & b)) + K[t + 5] + W[t + 5]) | 0;
      g = (g + t1) | 0;
      c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) ^ (d & f) ^ (e & f))) | 0;
      t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + ((g & h) ^ (~g & a)) + K[t + 6] + W[t + 6]) | 0;
      f = (f + t1) | 0;
      b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) ^ (c & e) ^ (d & e))) | 0;
      t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + ((f & g) ^ (~f & h)) + K[t + 7] + W[t + 7]) | 0;
      e = (e + t1) | 0;
      a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) ^ (b & d) ^ (c & d))) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  H[0] = h0; H[1] = h1; H[2] = h2; H[3] = h3; H[4] = h4; H[5] = h5; H[6] = h6; H[7] = h7;
}

const pad = new Uint8Array(128);

/** The SHA-256 digest (32 bytes) of `bytes`, a Uint8Array. */
export function sha256(bytes) {
  H.set(IV);
  const whole = bytes.length - (bytes.length % 64);
  blocks(bytes, whole);
  // The tail, a 1 bit, zeros, and the length in bits (big-endian, 64 bits).
  const rest = bytes.length - whole;
  const n = rest < 56 ? 64 : 128;
  pad.fill(0);
  pad.set(bytes.subarray(whole), 0);
  pad[rest] = 0x80;
  const bits = bytes.length * 8;
  const hi = Math.floor(bits / 4294967296);
  pad[n - 8] = hi >>> 24;
  pad[n - 7] = hi >>> 16;
  pad[n - 6] = hi >>> 8;
  pad[n - 5] = hi;
  pad[n - 4] = bits >>> 24;
  pad[n - 3] = bits >>> 16;
  pad[n - 2] = bits >>> 8;
  pad[n - 1] = bits;
  blocks(pad, n);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[i * 4] = H[i] >>> 24;
    out[i * 4 + 1] = H[i] >>> 16;
    out[i * 4 + 2] = H[i] >>> 8;
    out[i * 4 + 3] = H[i];
  }
  return out;
}

const HEX = new TextEncoder().encode('0123456789abcdef');
const hexOut = new Uint8Array(64);
const ASCII = new TextDecoder();

/** Lower-case hex of the SHA-256 digest of `bytes`. */
export function sha256Hex(bytes) {
  const d = sha256(bytes);
  for (let i = 0; i < 32; i++) {
    hexOut[2 * i] = HEX[d[i] >> 4];
    hexOut[2 * i + 1] = HEX[d[i] & 15];
  }
  // One native call, where 64 string concatenations would each allocate.
  return ASCII.decode(hexOut);
}

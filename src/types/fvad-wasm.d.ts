// The WASM build of libfvad ships no types; bench/vad/score.ts gives it its shape.
declare module '@echogarden/fvad-wasm' {
  const fvad: () => Promise<unknown>;
  export default fvad;
}

/** The part of notepack.io (the msgpack codec socket.io-msgpack-parser uses) the snippet
 * calls directly; the package ships no types. */
declare module "notepack.io" {
  export function encode(value: unknown): ArrayBuffer | Uint8Array;
}

// Peer addresses as sockets report them, made comparable with configured ones.

/** A socket's remote address as a plain address: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4. */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

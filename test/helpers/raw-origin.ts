/**
 * An origin on a raw socket: it records every request head exactly as the bytes arrived (request
 * line included, nothing normalised) and answers with bytes the test chooses, so that tests can
 * send what node's own server never would (an unsolicited 100 Continue, a close at the wrong time).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RawRequest {
  /** The request line, e.g. `GET /metrics?x=1 HTTP/1.1`. */
  line: string;
  method: string;
  target: string;
  /** Header lines as received. */
  headers: string[];
  /** The request's position on its connection: 0 for the first. */
  onConnection: number;
}

/** What the origin writes for one request; `socket` lets a test do something unusual instead. */
export type RawAnswer = (request: RawRequest, socket: Socket) => string | Buffer | undefined;

export interface RawOrigin {
  url: string;
  port: number;
  requests: RawRequest[];
  /** Every byte received, on every connection, in order of arrival. */
  received(): string;
  connections: number;
  answer: RawAnswer;
  close(): Promise<void>;
}

export function okResponse(body = 'ok_metric 1\n', headers: string[] = []): string {
  return [
    'HTTP/1.1 200 OK',
    'Content-Type: text/plain; version=0.0.4',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...headers,
    '',
    body,
  ].join('\r\n');
}

export async function startRawOrigin(answer: RawAnswer = () => okResponse()): Promise<RawOrigin> {
  const sockets = new Set<Socket>();
  const chunks: Buffer[] = [];
  const origin: RawOrigin = {
    url: '',
    port: 0,
    requests: [],
    received: () => Buffer.concat(chunks).toString('latin1'),
    connections: 0,
    answer,
    close: async () => undefined,
  };
  const server: Server = createServer((socket) => {
    origin.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    let n = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) !== -1) {
        const [line = '', ...headers] = buffered.slice(0, end).split('\r\n');
        buffered = buffered.slice(end + 4);
        const [method = '', target = ''] = line.split(' ');
        const request: RawRequest = { line, method, target, headers, onConnection: n++ };
        origin.requests.push(request);
        const out = origin.answer(request, socket);
        if (out !== undefined && socket.writable) socket.write(out);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.port = (server.address() as AddressInfo).port;
  origin.url = `http://127.0.0.1:${origin.port}`;
  origin.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return origin;
}

/** Sends bytes as written on one connection and collects what came back until it closed (or timeoutMs). */
export function rawRequest(url: string, text: string | Buffer, timeoutMs = 5000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    import('node:net').then(({ connect }) => {
      const socket = connect(Number(port), hostname);
      const got: Buffer[] = [];
      const timer = setTimeout(() => socket.destroy(), timeoutMs);
      socket.on('data', (c: Buffer) => got.push(c));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(got).toString('latin1'));
      });
      socket.on('connect', () => socket.write(text));
    }, reject);
  });
}

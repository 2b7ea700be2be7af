// The machine's own floor for bench:latency: a bare node:http2 server, no gRPC library, that
// answers every request with the same gRPC answer. Started by bare-http2.ts; argv: port, answer (hex).
import { createServer } from "node:http2";

const port = Number(process.argv[2]);
const answer = Buffer.from(process.argv[3] ?? "", "hex");
const server = createServer();
server.on("stream", (stream) => {
  // Read the request to its end, as a gRPC server does, then answer: headers, the message, trailers.
  stream.resume();
  stream.on("end", () => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(answer);
  });
});
server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));

// The floor every cost in bench:latency is a multiple of: a bare grpc-js server whose one unary
// handler does nothing but answer the same bytes, on grpc-js's defaults. Started by bare-http2.ts;
// argv: port, gRPC method path, the answer's gRPC frame (hex).
import * as grpc from "@grpc/grpc-js";

const port = Number(process.argv[2]);
const path = process.argv[3] ?? "/bare.v1.Bare/Noop";
// The frame's 5-byte header (compressed flag, length) is grpc-js's to write.
const answer = Buffer.from(process.argv[4] ?? "", "hex").subarray(5);
const identity = (b: Buffer) => b;
const server = new grpc.Server();
server.addService(
  {
    noop: {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  { noop: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer) },
);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  process.stdout.write("listening\n");
});

// The servers bench:guard measures, in a process of their own so their CPU is theirs alone: the
// payments example's TransferService on grpc-js, bare and behind guard.grpc, and on connect-node,
// bare and behind guard.connect. Reports its ports, then its CPU time whenever asked (IPC).
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { createStepgateClient } from "@stepgate/client";
import { TransferService } from "@stepgate/example-payments/gen/payments/v1/transfer_service_pb";
import { transferGuard } from "@stepgate/example-payments/transfer-service";
import { createGrpcServiceDefinition } from "@stepgate/grpc-bridge";

const stepgate = createStepgateClient({ target: process.env.STEPGATE_TARGET ?? "", caller: "payments" });
const guard = transferGuard(stepgate);
const answer = {
  transferId: "t-1",
  action: "payments.transfer",
  acr: "aal2",
  amr: ["otp"],
  singleUse: false,
};

async function grpcJs(interceptors: grpc.ServerInterceptor[]): Promise<number> {
  const server = new grpc.Server({ interceptors });
  server.addService(createGrpcServiceDefinition(TransferService), {
    transfer: (_call: unknown, done: grpc.sendUnaryData<unknown>) => done(null, answer),
  });
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
}

async function connectNode(interceptors: Interceptor[]): Promise<number> {
  const routes = (router: ConnectRouter) => router.service(TransferService, { transfer: () => answer });
  const server = http2.createServer(connectNodeAdapter({ routes, interceptors }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const ports = {
  "grpc-js bare": await grpcJs([]),
  "grpc-js + guard": await grpcJs([guard.grpc]),
  "connect-node bare": await connectNode([]),
  "connect-node + guard": await connectNode([guard.connect]),
};
process.on("message", () => process.send?.({ cpu: process.cpuUsage() }));
process.send?.({ ports });

import type { DescMethod } from "@bufbuild/protobuf";

const fullNames = new WeakMap<DescMethod, string>();
const shortNames = new WeakMap<DescMethod, string>();

/** "stepgate.v1.StepUpService/Verify": the gRPC method path without its slash, as logs name it. */
export function rpcName(method: DescMethod): string {
  return remembered(fullNames, method, () => `${method.parent.typeName}/${method.name}`);
}

/** "StepUpService/Verify": the name call priorities know a method by. */
export function shortRpcName(method: DescMethod): string {
  return remembered(shortNames, method, () => `${method.parent.name}/${method.name}`);
}

// Built once per method: interceptors ask for them on every call.
function remembered(names: WeakMap<DescMethod, string>, method: DescMethod, build: () => string): string {
  let name = names.get(method);
  if (name === undefined) {
    name = build();
    names.set(method, name);
  }
  return name;
}

import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

/** Every file a service's file depends on, itself first. */
function fileClosure(file: DescFile, seen = new Set<string>()): DescFile[] {
  if (seen.has(file.name)) return [];
  seen.add(file.name);
  return [file, ...file.dependencies.flatMap((d) => fileClosure(d, seen))];
}

/**
 * Server reflection (v1 and v1alpha) from protobuf-es descriptors, so grpcurl and buf curl can
 * list, describe and call every service with JSON.
 */
export function addReflection(
  server: grpc.Server,
  services: DescService[],
  extraFiles: DescFile[] = [],
): void {
  const definition = Object.fromEntries(
    services.map((s) => {
      const seen = new Set<string>();
      const files = [s.file, ...extraFiles].flatMap((f) => fileClosure(f, seen));
      return [
        s.typeName,
        { fileDescriptorProtos: files.map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
      ];
    }),
  );
  new ReflectionService(definition as never).addToServer(server);
}

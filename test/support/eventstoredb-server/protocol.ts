/**
 * The service definitions and message classes `@eventstore/db-client` ships, loaded from the
 * client's own directory: the client checks `instanceof` on them, and Node's module cache hands
 * both sides the very same classes.
 */
import { createRequire } from 'node:module';

const clientRequire = createRequire(createRequire(import.meta.url).resolve('@eventstore/db-client'));
const load = <T>(name: string): T => clientRequire(`../generated/${name}`) as T;

export const streamsPb =
  load<typeof import('@eventstore/db-client/generated/streams_pb.js')>('streams_pb.js');
export const streamsGrpc =
  load<typeof import('@eventstore/db-client/generated/streams_grpc_pb.js')>('streams_grpc_pb.js');
export const sharedPb = load<typeof import('@eventstore/db-client/generated/shared_pb.js')>('shared_pb.js');
export const statusPb = load<typeof import('@eventstore/db-client/generated/status_pb.js')>('status_pb.js');
export const featuresPb =
  load<typeof import('@eventstore/db-client/generated/serverfeatures_pb.js')>('serverfeatures_pb.js');
export const featuresGrpc =
  load<typeof import('@eventstore/db-client/generated/serverfeatures_grpc_pb.js')>(
    'serverfeatures_grpc_pb.js',
  );

interface AnyMessage {
  pack(serialized: Uint8Array, name: string, prefix?: string): void;
}
interface EmptyMessage {
  serializeBinary(): Uint8Array;
}
export const anyPb = clientRequire('google-protobuf/google/protobuf/any_pb.js') as {
  Any: new () => AnyMessage;
};
export const emptyPb = clientRequire('google-protobuf/google/protobuf/empty_pb.js') as {
  Empty: new () => EmptyMessage;
};

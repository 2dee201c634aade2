"""gRPC transport: the only package that imports grpc and the generated *_pb2 modules."""

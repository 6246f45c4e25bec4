/**
 * The API's zod schemas: they validate requests, type the handlers and generate the OpenAPI
 * document, so the three never disagree. One module for each thing they describe.
 */
export * from './schemas/common.ts';
export * from './schemas/bodies.ts';
export * from './schemas/headers.ts';
export * from './schemas/queries.ts';
export * from './schemas/responses.ts';

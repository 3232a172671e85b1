// GPU pools: sizing (pure), node observation, status and provider request shapes.
export * from './demand.js';
export * from './nodes.js';
export * from './status.js';
export * from './providers.js';
export * from './joint.js';

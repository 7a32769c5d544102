// Runs the stompbus command from a build of src/ (the harness compiles one into
// bench/load/.build): `node bench/load/run-cli.mjs <build>/cli.js [flags]`.
// Plain JavaScript, so that no TypeScript loader runs inside the broker measured.
import { pathToFileURL } from 'node:url';

const [cli, ...flags] = process.argv.slice(2);
const { main } = await import(pathToFileURL(cli).href);
await main(flags);

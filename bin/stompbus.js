#!/usr/bin/env node
// The `stompbus` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the prepare script) or `npm run build`.
import { main } from '../dist/cli.js';

await main();

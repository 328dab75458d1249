/** `npm run docs:config`: regenerate docs/config.schema.json and docs/configuration.md. */
import { writeFileSync } from 'node:fs';
import { configJsonSchema, configMarkdown } from './json-schema.js';

writeFileSync('docs/config.schema.json', JSON.stringify(configJsonSchema(), null, 2) + '\n');
writeFileSync('docs/configuration.md', configMarkdown());
process.stdout.write('wrote docs/config.schema.json and docs/configuration.md\n');

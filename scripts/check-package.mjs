// Checks what `npm pack` would ship: every source map in dist/ resolves on its own (the sources it
// names are inlined, since lib/ is not in the tarball), and every file the exports map names exists.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const problems = [];
const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
const maps = walk('dist').filter((file) => file.endsWith('.js.map'));
for (const file of maps) {
  const map = JSON.parse(readFileSync(file, 'utf8'));
  if (!Array.isArray(map.sourcesContent) || map.sourcesContent.length !== map.sources.length || map.sourcesContent.some((c) => typeof c !== 'string')) {
    problems.push(`${file}: its sources are not inlined`);
  }
}
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
for (const [entry, targets] of Object.entries(pkg.exports)) {
  for (const target of typeof targets === 'string' ? [targets] : Object.values(targets)) {
    if (!existsSync(target)) {
      problems.push(`exports["${entry}"] names ${target}, which the build does not produce`);
    }
  }
}
if (maps.length === 0) {
  problems.push('no source map in dist/');
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`package check: ${maps.length} source maps with their sources inlined, every export present`);

import { describe, expect, it } from 'vitest';
import { checkDockerfile, foundByName } from '../../runtime/dockerfile-check.js';
import { parseDockerfileText } from '../../runtime/dockerfile-parse.js';
import { buildStepObjects, planDockerfile } from '../../runtime/dockerfile.js';
import { throwsOneLine } from '../support/errors.js';

const OK = 'slipway/stack:test';
const images = (text: string, config: Record<string, string> = {}) => planDockerfile(text, config).plan.images.map((i) => `${i.line} ${i.use} ${i.image}`);
/** The Dockerfile is refused with one line naming `line` and matching `pattern`. */
function refused(text: string, line: number, pattern: RegExp): void {
  const err = throwsOneLine(() => planDockerfile(text, {}));
  expect(err.code).toBe('E_BUILD');
  expect(err.message).toMatch(new RegExp(`^Dockerfile line ${line}: `));
  expect(err.message).toMatch(pattern);
}

describe('Dockerfile parser (as the engine reads a file)', () => {
  it('joins continuation lines with nothing in between, skipping blank and comment lines', () => {
    const parsed = parseDockerfileText(`FROM ${OK}\nLABEL a=b \\  \n\n  # c\n  c=d\nFROM slipway/sta\\\nck:test\n`);
    expect(parsed.instructions.map((i) => [i.line, i.keyword, i.args])).toEqual([
      [1, 'from', OK],
      [2, 'label', 'a=b   c=d'],
      [6, 'from', OK],
    ]);
  });

  it('reads directives only in the unbroken run at the top, key case-insensitive, after a BOM or spaces', () => {
    expect(parseDockerfileText('# Escape=`\nFROM x\n').escape).toBe('`');
    expect(parseDockerfileText('\uFEFF   #escape = `\nFROM x\n').escape).toBe('`');
    expect(parseDockerfileText('# syntax=x\n# escape=`\nFROM x\n').escape).toBe('`');
    // After a blank line, a comment, an unknown directive or an instruction it is a comment.
    for (const head of ['\n', '# hello\n', '# check=x\n', 'FROM x\n']) expect(parseDockerfileText(`${head}# escape=\`\nFROM x\n`).escape).toBe('\\');
    expect(parseDockerfileText('FROM x\r\nRUN a \\\r\n b\r\n').instructions.map((i) => i.args)).toEqual(['x', 'a  b']);
  });

  it('refuses what the engine refuses in directives', () => {
    expect(throwsOneLine(() => parseDockerfileText('# escape=`\n# escape=\\\nFROM x\n')).message).toMatch(/^Dockerfile line 2: only one escape/);
    expect(throwsOneLine(() => parseDockerfileText('# escape=` junk\nFROM x\n')).message).toMatch(/^Dockerfile line 1: invalid escape token/);
  });

  it('reads flags with quotes and backslashes removed, as the engine does', () => {
    const [ins] = parseDockerfileText('COPY --from="reg.example/im\\age" --chown=1:1 a b\n').instructions;
    expect(ins!.flags).toEqual(['--from=reg.example/image', '--chown=1:1']);
    expect(ins!.args).toBe('a b');
  });
});

describe('Dockerfile stage references', () => {
  it('lists every image FROM, COPY --from and RUN --mount from= read, with its line', () => {
    const text = [`FROM ${OK} AS build`, 'RUN true', `FROM ${OK}`, 'COPY --from=build /a /a', 'COPY --from=0 /b /b', 'COPY --from=registry.example.com/evil/image:1 /x /x', 'RUN --mount=type=bind,from=reg.example/img,target=/m true'].join('\n');
    expect(images(text)).toEqual(['1 FROM slipway/stack:test', '6 COPY --from registry.example.com/evil/image:1', '7 RUN --mount from= reg.example/img']);
  });

  it('does not take the current or a later stage for a stage (the engine would pull that name)', () => {
    expect(images(`FROM ${OK} AS me\nCOPY --from=me /a /a\n`)).toContain('2 COPY --from me');
    expect(images(`FROM ${OK}\nCOPY --from=later /a /a\nFROM ${OK} AS later\n`)).toContain('2 COPY --from later');
    refused(`FROM ${OK}\nCOPY --from=0 /a /a\n`, 2, /not an earlier stage/);
    // FROM finds stages by name only: `FROM 0` names an image.
    expect(images(`FROM ${OK}\nFROM 0\n`)).toContain('2 FROM 0');
    expect(images(`FROM ${OK} AS Build\nFROM BUILD\nFROM scratch\n`)).toEqual(['1 FROM slipway/stack:test']);
  });

  it('sees a FROM hidden by an "# escape=" comment after an instruction (the engine ignores that line)', () => {
    // A parser honouring the comment would join the last two lines and miss the second FROM.
    expect(images(`FROM ${OK}\n# escape=\`\nRUN true \`\nFROM evil.example/image\n`)).toContain('4 FROM evil.example/image');
  });

  it('sees a FROM behind a backslash when "# escape=`" is the real directive', () => {
    // With escape=` a trailing backslash continues nothing: the engine reads a FROM on line 4.
    expect(images(`# escape=\`\nFROM ${OK}\nLABEL a=b \\\nFROM evil.example/image\n`)).toContain('4 FROM evil.example/image');
    expect(images(`\uFEFF # escape=\`\nFROM ${OK}\nLABEL a=b \\\nFROM evil.example/image\n`)).toContain('4 FROM evil.example/image');
  });

  it('refuses "# escape=" on line 2 behind a "# syntax=" directive (and syntax directives at all)', () => {
    refused(`# syntax=docker/dockerfile:1\n# escape=\`\nFROM ${OK}\nLABEL a=b \\\nFROM evil.example/image\n`, 1, /syntax=.*BuildKit frontend image.*remove the line/);
    refused(`# escape=\`\n#SYNTAX = evil.example/frontend\nFROM ${OK}\n`, 2, /syntax=/);
  });

  it('joins continuation lines as the engine does before checking FROM', () => {
    expect(images(`FROM ${OK}\nFROM evil.example\\\n/image\n`)).toContain('2 FROM evil.example/image');
  });

  it('resolves FROM variables only to a literal image', () => {
    expect(images(`ARG BASE=${OK}\nFROM $BASE\nFROM \${BASE}\n`)).toEqual(['2 FROM slipway/stack:test']);
    expect(images(`ARG BASE\nFROM $BASE\n`, { BASE: 'local/img:1' })).toEqual(['2 FROM local/img:1']);
    refused(`ARG BASE=${OK}\nFROM \${BASE:-evil/img}\n`, 2, /only \$NAME and \$\{NAME\}/);
    refused('ARG BASE\nFROM $BASE\n', 2, /has no value/);
    refused(`FROM ${OK}\nARG LATE=x\nFROM $LATE\n`, 3, /no ARG before the first FROM/);
    refused(`ARG BASE="${OK}"\nFROM $BASE\n`, 2, /quotes, escapes/);
    refused(`ARG BASE=${OK}\nARG BASE=evil/img\nFROM $BASE\n`, 3, /declared twice/);
    refused('FROM "evil/img"\n', 1, /quotes and escapes/);
    refused(`ARG BASE=$OTHER\nFROM $BASE\n`, 2, /quotes, escapes or variables/);
    const err = throwsOneLine(() => planDockerfile('ARG BASE\nFROM $BASE\n', { BASE: 'evil img' }));
    expect(err.message).toMatch(/^Dockerfile line 2: .*not a plain image reference/);
  });

  it('refuses variables, quotes and empties in --from', () => {
    refused(`FROM ${OK}\nCOPY --from=$IMG /a /a\n`, 2, /variables are not supported/);
    refused(`FROM ${OK}\nCOPY --from= /a /a\n`, 2, /names nothing/);
    refused(`FROM ${OK}\nCOPY --from=Evil/Img /a /a\n`, 2, /not a plain image reference/);
  });

  it('refuses FROM --platform (it can make the engine pull)', () => {
    refused(`FROM --platform=linux/arm64 ${OK}\n`, 1, /--platform is not supported/);
  });
});

describe('Dockerfile instructions that reach out', () => {
  it('refuses ADD from a URL, a git repository or a variable', () => {
    refused(`FROM ${OK}\nADD http://example.com/x /x\n`, 2, /^Dockerfile line 2: ADD from a URL .*COPY it$/);
    refused(`FROM ${OK}\nADD HTTPS://example.com/x /x\n`, 2, /ADD from a URL/);
    refused(`FROM ${OK}\nADD ["https://example.com/x", "/x"]\n`, 2, /ADD from a URL/);
    refused(`FROM ${OK}\nADD git@github.com:evil/repo.git /src\n`, 2, /git repository/);
    refused(`FROM ${OK}\nADD a \\\n  ftp://example.com/x /x\n`, 2, /ADD from a URL/);
    refused(`FROM ${OK}\nARG SRC=http://example.com/x\nADD $SRC /x\n`, 3, /variable in its sources/);
    refused(`FROM ${OK}\nADD --checksum=sha256:00 a /x\n`, 2, /--checksum is not supported/);
    expect(images(`FROM ${OK}\nADD app.tar.gz /app\nCOPY --chown=1000:1000 . /app\n`)).toEqual(['1 FROM slipway/stack:test']);
  });

  it('refuses heredocs', () => {
    refused(`FROM ${OK}\nRUN <<EOF\necho hi\nEOF\n`, 2, /heredoc/);
    refused(`FROM ${OK}\nCOPY <<-"EOF" /x\n`, 2, /heredoc/);
    refused(`FROM ${OK}\nRUN cat 0<<EOF > /x\n`, 2, /heredoc/);
    expect(images(`FROM ${OK}\nRUN echo $((1<<3))\n`)).toHaveLength(1);
  });

  it('refuses ONBUILD, secret and ssh mounts, other RUN flags and unknown instructions', () => {
    refused(`FROM ${OK}\nONBUILD ADD http://example.com/x /x\n`, 2, /ONBUILD is not supported/);
    refused(`FROM ${OK}\nRUN --mount=type=secret,id=k cat /run/secrets/k\n`, 2, /type=secret is not supported/);
    refused(`FROM ${OK}\nRUN --mount=type=SSH true\n`, 2, /type=ssh is not supported/);
    refused(`FROM ${OK}\nRUN --network=host true\n`, 2, /RUN --network is not supported/);
    refused(`FROM ${OK}\nFROB x\n`, 2, /unknown instruction "FROB"/);
    refused('RUN true\nFROM x\n', 1, /before the first FROM/);
    refused(`FROM ${OK}\nCOPY --fr\u00a0om=x a b\n`, 2, /non-ASCII/);
  });

  it('checks every refusal kind with the checker alone, on the parsed file', () => {
    const plan = checkDockerfile(parseDockerfileText(`FROM ${OK}\nARG A\nARG B=1\n`));
    expect(plan).toEqual({ images: [{ image: OK, line: 1, use: 'FROM' }], args: ['A', 'B'] });
  });
});

describe('images named by tag, not by ID', () => {
  it('accepts a tag or digest the image carries, with Docker Hub names short or long', () => {
    const info = { RepoTags: ['debian:12', 'reg.example:5000/team/img:1'], RepoDigests: ['debian@sha256:abcd'] };
    for (const ok of ['debian:12', 'docker.io/library/debian:12', 'library/debian:12', 'reg.example:5000/team/img:1', 'debian@sha256:abcd', 'debian:12@sha256:abcd']) expect(foundByName(ok, info)).toBe(true);
    for (const bad of ['debian', '3f2c1ab', 'sha256:3f2c1ab', 'reg.example:5000/team/img', 'debian@sha256:ffff']) expect(foundByName(bad, info)).toBe(false);
    expect(foundByName('img', { RepoTags: ['img:latest'] })).toBe(true);
    expect(foundByName('img', { RepoTags: null })).toBe(false);
  });
});

describe('failed build leftovers', () => {
  it('reads the step images and containers from the classic builder output', () => {
    const lines = ['Step 1/3 : FROM slipway/stack:x', ' ---> 0123456789ab', 'Step 2/3 : RUN a', ' ---> Running in aaaaaaaaaaaa', 'Removing intermediate container aaaaaaaaaaaa', ' ---> bbbbbbbbbbbb', 'Step 3/3 : RUN b', ' ---> Using cache', ' ---> cccccccccccc', ' ---> Running in dddddddddddd'];
    expect(buildStepObjects(lines)).toEqual({ images: ['0123456789ab', 'bbbbbbbbbbbb', 'cccccccccccc'], containers: ['aaaaaaaaaaaa', 'dddddddddddd'] });
  });
});

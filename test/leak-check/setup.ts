/**
 * Runs before every test file (vitest setupFiles): puts the file under the leak check. The taps
 * go in first, the file's record starts, each test's name is noted so a finding names its test,
 * and after the file's own after-hooks (vitest runs after-hooks last in, first out, so this one
 * runs last) its output is searched and its report written for global-setup.ts.
 */
import { afterAll, afterEach, beforeEach, expect, inject } from 'vitest';
import { finishFile, setCurrentTest, startFile } from './recorder.js';
import { installWireTaps } from './wire-taps.js';

interface Named {
  name: string;
  suite?: Named | undefined;
}

function fullName(task: Named): string {
  const names: string[] = [];
  for (let at: Named | undefined = task; at; at = at.suite) if (at.name) names.unshift(at.name);
  return names.join(' > ');
}

installWireTaps();
startFile(expect.getState().testPath ?? 'an unknown test file');

beforeEach((context) => {
  setCurrentTest(fullName(context.task));
});

afterEach(() => {
  setCurrentTest('(between tests)');
});

afterAll(async () => {
  setCurrentTest('(file tear-down)');
  await finishFile(inject('leakCheckDir'));
});

// What the round trip's references answer to a hook request, so that a plugin and its reference
// do the same work (docs/performance.md): the plugin's answer for an unchanged object ({state}),
// a hook's answer that edits the object (the whole object back, one field changed), or the old
// reference's echo of the whole request.
import type { Entity, HookParams, HookResult } from 'keyhold-plugin-sdk';

export const ANSWERS = ['state', 'changed', 'echo'] as const;
export type AnswerKind = (typeof ANSWERS)[number];

export function isAnswerKind(value: unknown): value is AnswerKind {
  return ANSWERS.includes(value as AnswerKind);
}

/** The name a changing hook gives the entity: the one edit, made by the bench plugin and its references alike. */
export const CHANGED_NAME = 'Alice Changed';

export function answer(kind: AnswerKind, params: HookParams): HookResult | HookParams {
  if (kind === 'echo') return params;
  if (kind === 'state') return { state: params.context.state };
  const subject = params.subject as Entity;
  return { subject: { ...subject, meta: { ...subject.meta, displayName: CHANGED_NAME } }, state: params.context.state };
}

// A plugin refuses a request by throwing Veto: the client gets a 4xx with this message.
// Any other error thrown from a hook is treated as a plugin failure (5xx).

export class Veto extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Veto';
  }
}
